# client: libkeel splitter/router, crc path and retry state machine on a
# fake transport (no network). Uses a real reactor: exits 77 (a failure under ctest) without io_uring.
keel_unit_test(test_client SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_client.c LIBS keel TIMEOUT 60)

# keel-client QoS: the token buckets and FIFO of client/qos.h on made-up
# times (pure: no reactor, no clock).
keel_unit_test(test_qos SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_qos.c LIBS keel_export)
# blk_qos: the limiter as a blk_dev on a real reactor over a fake device
# (timer release, order, flush, discards, -EAGAIN, errors, destroy).
keel_unit_test(test_blk_qos SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_blk_qos.c LIBS keel_export
  TIMEOUT 60)
