# NBD export: unit tests for the socket-free protocol code (nbd_parse) and
# functional tests against keel-export with real NBD clients (fio, qemu-img,
# qemu-io, nbdinfo) and a raw-socket malformed client; each functional
# script first runs its checks against qemu-storage-daemon on a file, so a
# harness bug cannot pass as a product bug.
keel_unit_test(test_nbd_parse SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_nbd_parse.c
  LIBS keel_export TIMEOUT 60)
# The server on a RAM blk_dev that answers -EAGAIN at depth 3, driven by a
# blocking client thread: pipelining, parked-request retry, close waiting
# for the device.
keel_unit_test(test_nbd_server SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_nbd_server.c
  LIBS keel_export pthread TIMEOUT 60)

foreach(t t_nbd_tools t_nbd_malformed)
  add_test(NAME nbd_${t}
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/${t}.py ${CMAKE_BINARY_DIR})
  set_tests_properties(nbd_${t} PROPERTIES TIMEOUT 600 LABELS "functional;nbd")
endforeach()

# libFuzzer (tests/CMakeLists.txt, WITH_FUZZ): the handshake and request
# parsers on a hostile client's session.
if(WITH_FUZZ)
  keel_fuzz_target(fuzz_nbd_parse SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_nbd_parse.c
    ${CMAKE_SOURCE_DIR}/client/nbd_parse.c)
endif()
