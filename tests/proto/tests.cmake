# proto: framing, authentication, framed connections.
keel_unit_test(test_frame SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_frame.c LIBS keel_proto)
keel_unit_test(test_auth SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_auth.c LIBS keel_proto)
# Real TCP on 127.0.0.1 through one reactor; exits 77 (a failure under ctest) when io_uring is unavailable.
keel_unit_test(test_conn SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_conn.c LIBS keel_proto TIMEOUT 60)

keel_unit_test(test_cmap SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cmap.c LIBS keel_proto m)

# libFuzzer (tests/CMakeLists.txt, WITH_FUZZ): the header decoder every
# peer's first bytes reach, and the payload crc check.
if(WITH_FUZZ)
  keel_fuzz_target(fuzz_frame SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_frame.c
    ${CMAKE_SOURCE_DIR}/proto/frame.c ${CMAKE_SOURCE_DIR}/common/crc.c LIBS PkgConfig::ISAL)
endif()
