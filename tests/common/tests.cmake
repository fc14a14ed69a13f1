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

# The RDMA driver (xport_rdma.c) on a fake device: keel_common's sources and
# libraries without libibverbs and librdmacm, whose functions fake_verbs.c
# defines.
if(WITH_RDMA)
  find_package(Threads REQUIRED)
  get_target_property(KEEL_COMMON_SRCS keel_common SOURCES)
  get_target_property(KEEL_COMMON_DIR keel_common SOURCE_DIR)
  list(TRANSFORM KEEL_COMMON_SRCS PREPEND ${KEEL_COMMON_DIR}/ REGEX "^[^/]")
  get_target_property(KEEL_COMMON_LIBS keel_common LINK_LIBRARIES)
  list(REMOVE_ITEM KEEL_COMMON_LIBS PkgConfig::IBVERBS PkgConfig::RDMACM)
  keel_unit_test(test_xport_rdma SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_xport_rdma.c
    ${CMAKE_CURRENT_LIST_DIR}/fake_verbs.c ${KEEL_COMMON_SRCS} LIBS ${KEEL_COMMON_LIBS}
    TIMEOUT 120)
  target_include_directories(test_xport_rdma PRIVATE ${IBVERBS_INCLUDE_DIRS}
    ${RDMACM_INCLUDE_DIRS})
endif()
