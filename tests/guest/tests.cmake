# Real-guest tests of the vhost-user-blk export: a Debian 12 kernel and a
# busybox + fio initramfs (tests/guest/build-guest.sh, cached in
# BUILD_DIR/guest) boot under QEMU/TCG on the export's socket and write,
# read back and fio-verify /dev/vda; the host reads the same data over NBD.
# /usr/bin/python3 stdlib only; docs/testing.md, "Guest tests".
set(KEEL_GUEST_DIR ${CMAKE_CURRENT_LIST_DIR})

# The harness against the reference backend (qemu-storage-daemon), with a
# null-co negative control that must fail.
add_test(NAME guest_qsd
  COMMAND /usr/bin/python3 ${KEEL_GUEST_DIR}/t_guest_qsd.py ${CMAKE_BINARY_DIR})
set_tests_properties(guest_qsd PROPERTIES TIMEOUT 420 LABELS "functional;guest;slow")

# The same checks, plus a kill-and-restart of the export under a running
# guest, against keel-export (client/vhost_blk.c, client/nbd_server.c).
add_test(NAME guest_export
  COMMAND /usr/bin/python3 ${KEEL_GUEST_DIR}/t_guest_keel.py ${CMAKE_BINARY_DIR}
          --backend keel-export)
set_tests_properties(guest_export PROPERTIES TIMEOUT 600 LABELS "functional;guest"
  REQUIRED_FILES "$<TARGET_FILE:keel-export>")

# The product path: keel-client serving a 3-replica volume of a local
# cluster (deploy/local-cluster.sh), attached through keelctl; faults: a
# keel-server SIGKILLed under the guest's fio, keel-client SIGKILLed and
# restarted under it (QEMU reconnect=1). Label cluster: release build only.
add_test(NAME guest_client
  COMMAND /usr/bin/python3 ${KEEL_GUEST_DIR}/t_guest_keel.py ${CMAKE_BINARY_DIR}
          --backend keel-client)
set_tests_properties(guest_client PROPERTIES TIMEOUT 900 LABELS "functional;guest;cluster"
  REQUIRED_FILES "$<TARGET_FILE:keel-client>;$<TARGET_FILE:keel-server>;$<TARGET_FILE:keel-mgmt>")

# RDMA transport acceptance (issue 6, docs/rdma.md): software RoCE (rdma_rxe)
# inside a TCG guest, mgmt + 3 keel-servers + keel-bench --verify with
# transport=rdma through a server SIGKILL and restart; the daemons' counters
# must show the data on RDMA. Only in builds with the RDMA transport.
if(WITH_RDMA)
  add_test(NAME guest_rdma
    COMMAND /usr/bin/python3 ${KEEL_GUEST_DIR}/t_guest_rdma.py ${CMAKE_BINARY_DIR})
  set_tests_properties(guest_rdma PROPERTIES TIMEOUT 1200 LABELS "rdma;guest;slow"
    REQUIRED_FILES "$<TARGET_FILE:keel-server>;$<TARGET_FILE:keel-mgmt>;$<TARGET_FILE:keel-bench>")
endif()
