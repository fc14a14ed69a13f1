# Unit tests for common/: one cmocka binary per module.
keel_unit_test(test_crc SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_crc.c LIBS keel_common)
keel_unit_test(test_config SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_config.c LIBS keel_common)
keel_unit_test(test_bufpool SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_bufpool.c LIBS keel_common
  TIMEOUT 30)
keel_unit_test(test_reactor SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_reactor.c LIBS keel_common
  TIMEOUT 30)
keel_unit_test(test_xport_tcp SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_xport_tcp.c
  LIBS keel_common TIMEOUT 60)
keel_unit_test(test_xrdma_core SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_xrdma_core.c
  LIBS keel_common TIMEOUT 120)
