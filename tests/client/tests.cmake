# client: libkeel splitter/router, crc path and retry state machine on a
# fake transport (no network). Uses a real reactor: exits 77 without io_uring.
keel_unit_test(test_client SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_client.c LIBS keel TIMEOUT 60)
set_tests_properties(test_client PROPERTIES SKIP_RETURN_CODE 77)
