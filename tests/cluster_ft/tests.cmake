# Cluster functional tests (issue "Cluster"): keel-mgmt and real keel-servers
# started by deploy/local-cluster.sh (loopback or network namespaces), a
# verified keel-bench load, faults (kill, pause, link down), keel-histcheck
# over the block history and a per-PG replica comparison at the end.
# /usr/bin/python3 stdlib only; root for the --netns tests. docs/testing.md
# says what each asserts and which environment variables make long runs.
set(KEEL_CFT_DIR ${CMAKE_CURRENT_LIST_DIR})

function(keel_cluster_ft name timeout labels)
  add_test(NAME cluster_ft_${name}
    COMMAND /usr/bin/python3 ${KEEL_CFT_DIR}/${name}.py ${CMAKE_BINARY_DIR})
  set_tests_properties(cluster_ft_${name} PROPERTIES TIMEOUT ${timeout}
    LABELS "${labels}"
    # Every binary the scripts run (BUILD_DIR layout), built before the test.
    REQUIRED_FILES "$<TARGET_FILE:keel-server>;$<TARGET_FILE:keel-mgmt>;$<TARGET_FILE:keel-client>;$<TARGET_FILE:keelctl>;$<TARGET_FILE:keel-bench>;$<TARGET_FILE:keel-histcheck>")
endfunction()

# Those labelled asan also run from the ASan/UBSan build in `make check`
# (check-asan: one at a time, leak checking off, since keel-bench exits
# without freeing what lives until exit): short ones that between them
# cover the data path, layers, attachments and faults.
# A test that finds an open product bug gets the label known-failing
# (docs/testing.md says why): `make check` leaves it out, `make check-cluster`
# runs it. None has it today.
keel_cluster_ft(t_netns 300 "functional;cluster")
keel_cluster_ft(t_kill 1200 "functional;cluster;slow")
keel_cluster_ft(t_pause_partition 600 "functional;cluster")
keel_cluster_ft(t_min_replicas 400 "functional;cluster")
keel_cluster_ft(t_resync 900 "functional;cluster")
keel_cluster_ft(t_msg_faults 600 "functional;cluster;asan")
# A member left to recovery, then another killed with writes in flight.
keel_cluster_ft(t_behind_kill 300 "functional;cluster;asan")
# Write coalescing on the primary: a hot object and a sequential fill, a kill.
keel_cluster_ft(t_coalesce 400 "functional;cluster;asan")
keel_cluster_ft(t_mgmt_restart 400 "functional;cluster")
keel_cluster_ft(t_client 600 "functional;cluster;client;asan")
# The stock cinder and openstack clients against the Block Storage v3 API.
keel_cluster_ft(t_cinder 600 "functional;cluster;client")
keel_cluster_ft(t_layers 300 "functional;cluster;volumes;asan")
keel_cluster_ft(t_merge 400 "functional;cluster;volumes;asan")
keel_cluster_ft(t_fsx 1800 "functional;cluster;volumes")
# Snapshots every second under a verified load, across a server SIGKILL.
keel_cluster_ft(t_snapshot_load 400 "functional;cluster;volumes")
# The same with a server SIGKILLed inside a snapshot request (docs/testing.md,
# "A server killed inside a snapshot request").
keel_cluster_ft(t_snapshot_kill 400 "functional;cluster;volumes")
keel_cluster_ft(t_metrics 300 "functional;cluster;client")
keel_cluster_ft(t_full 300 "functional;cluster;volumes;asan")
keel_cluster_ft(t_fence 300 "functional;cluster;client;asan")
# Per-volume QoS limits: keel-mgmt's API and keel-client's limiter, measured
# with fio over NBD (docs/operations.md, "QoS").
keel_cluster_ft(t_qos 300 "functional;cluster;client")
keel_cluster_ft(t_space 300 "functional;cluster;volumes;asan")
# Bad input to every mutating native REST route; concurrent deletes.
keel_cluster_ft(t_api_input 300 "functional;cluster;volumes")
