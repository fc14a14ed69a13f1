#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""05 config errors: bad values, unknown keys, loose key file modes and the
like make keel-server run exit 2 with one clear line on stderr and start
nothing; a device that is not formatted exits 1."""
import os
import stat

import keeltest as kt


def expect(env, name, args, code, needle, one_line=True):
    try:
        p = env.run([env.server_bin, "run"] + args, timeout=20)
    except kt.subprocess.TimeoutExpired:
        raise kt.TestFailure("%s: keel-server kept running" % name)
    err = p.stderr.strip()
    kt.check(p.returncode == code, "%s: exit %d (got %d: %s)" % (name, code, p.returncode, err))
    kt.check(needle in err, "%s: message mentions '%s'" % (name, needle))
    if one_line:
        kt.check(len(err.splitlines()) == 1, "%s: exactly one line on stderr" % name)
    kt.check("listening on" not in p.stdout + p.stderr, "%s: nothing started" % name)


def test(env):
    dev = os.path.join(env.dir, "drive0")
    env.format(dev, size="64M", object_size="1M", journal_size="8M")
    base = ["--device", dev, "--key", env.key, "--listen", "127.0.0.1:0"]

    def conf(name, text):
        path = os.path.join(env.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    expect(env, "unknown key in file",
           base + ["--config", conf("a.conf", "[server]\nflush_mod = always\n")], 2,
           "flush_mod")
    expect(env, "unknown section",
           base + ["--config", conf("b.conf", "[srv]\nlisten = 127.0.0.1:1\n")], 2, "srv")
    expect(env, "bad enum value",
           base + ["--config", conf("c.conf", "[server]\nflush_mode = sometimes\n")], 2,
           "sometimes")
    expect(env, "bad number",
           base + ["--config", conf("d.conf", "[server]\nmax_connections = lots\n")], 2,
           "max_connections")
    expect(env, "number out of range",
           base + ["--config", conf("e.conf", "[server]\nmax_connections = 0\n")], 2,
           "max_connections")
    expect(env, "config line number", base + ["--config", conf(
        "f.conf", "[server]\nlog_level = info\n\nmeta_cache_mb = -5\n")], 2, "f.conf:4")
    expect(env, "missing config file", base + ["--config", os.path.join(env.dir, "nope")], 2,
           "nope")
    expect(env, "unknown --set key", base + ["--set", "server.colour=blue"], 2, "colour")
    expect(env, "bad --set value", base + ["--set", "server.log_level=loud"], 2, "loud")
    expect(env, "bad --log-level", base + ["--log-level", "chatty"], 2, "chatty")

    loose = os.path.join(env.dir, "loose.key")
    with open(env.key) as f, open(loose, "w") as g:
        g.write(f.read())
    os.chmod(loose, 0o644)
    expect(env, "key file mode 0644",
           ["--device", dev, "--key", loose, "--listen", "127.0.0.1:0"], 2, "loose.key")
    os.chmod(loose, 0o640)
    expect(env, "key file mode 0640",
           ["--device", dev, "--key", loose, "--listen", "127.0.0.1:0"], 2, "loose.key")
    expect(env, "missing key file",
           ["--device", dev, "--key", os.path.join(env.dir, "nokey"),
            "--listen", "127.0.0.1:0"], 2, "nokey")
    bad_key = os.path.join(env.dir, "bad.key")
    with open(bad_key, "w") as f:
        f.write("not hex at all\n")
    os.chmod(bad_key, stat.S_IRUSR | stat.S_IWUSR)
    expect(env, "key file not hex",
           ["--device", dev, "--key", bad_key, "--listen", "127.0.0.1:0"], 2, "bad.key")

    blank = os.path.join(env.dir, "blank")
    with open(blank, "wb") as f:
        f.truncate(64 << 20)
    expect(env, "unformatted device",
           ["--device", blank, "--key", env.key, "--listen", "127.0.0.1:0"], 1,
           "not a Keel blockstore", one_line=False)

    # Usage errors of the other subcommands.
    p = env.run([env.server_bin, "format", "--device", dev, "--object-size", "3M"])
    kt.check(p.returncode == 2 and "power of two" in p.stderr, "format: bad object size -> 2")
    p = env.run([env.server_bin, "keygen", env.key])
    kt.check(p.returncode == 1 and "exists" in p.stderr, "keygen refuses an existing file")
    p = env.run([env.server_bin, "help", "run"])
    kt.check(p.returncode == 0 and all(s in p.stdout for s in
             ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "FILES", "EXIT STATUS",
              "EXAMPLES", "flush_mode")), "help run reads like a man page")

    # And the good configuration does start.
    good = conf("good.conf", "[server]\nflush_mode = none\nlog_level = info\n"
                "max_connections = 8\n")
    srv = env.server(dev, extra=["--config", good])
    srv.start()
    kt.check("flush mode none" in srv.log_text(), "a good config file is applied")
    kt.check(srv.stop() == 0, "and the server exits 0 on SIGTERM")


kt.main(test)
