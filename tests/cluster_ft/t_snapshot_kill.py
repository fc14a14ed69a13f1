#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""t_snapshot_kill: t_snapshot_load with a second fault, a keel-server
SIGKILLed 2 ms into a snapshot request (KEEL_SNAPLOAD_KILL_IN_SNAPSHOT=1).
Known-failing: see docs/testing.md ("Known-failing")."""
import os

os.environ["KEEL_SNAPLOAD_KILL_IN_SNAPSHOT"] = "1"

import clusterlib as cl  # noqa: E402
import t_snapshot_load  # noqa: E402

if __name__ == "__main__":
    cl.main(t_snapshot_load.test)
