# Blockstore tests: cmocka unit tests on the "ram" and "sim" devices, and the
# bs_crash acceptance test (2000 seeds in ctest; run it by hand with
# --seeds 100000 --start S for long runs).
keel_unit_test(test_bs_basic
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_bs_basic.c
  LIBS keel_bs
  TIMEOUT 120)
keel_unit_test(test_bs_alloc
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_bs_alloc.c
  LIBS keel_bs
  TIMEOUT 120)
keel_unit_test(test_bs_journal
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_bs_journal.c
  LIBS keel_bs
  TIMEOUT 120)
keel_unit_test(test_bs_bitrot
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_bs_bitrot.c
  LIBS keel_bs
  TIMEOUT 120)

add_executable(bs_crash ${CMAKE_CURRENT_LIST_DIR}/bs_crash.c)
target_link_libraries(bs_crash PRIVATE keel_bs)
add_test(NAME bs_crash COMMAND bs_crash --seeds 2000 --start 1)
set_tests_properties(bs_crash PROPERTIES TIMEOUT 600 LABELS "crash;slow")
# A shorter run on other seeds that also runs in the ASan/UBSan build
# (make check-asan skips the slow label).
add_test(NAME bs_crash_quick COMMAND bs_crash --seeds 300 --start 500001)
set_tests_properties(bs_crash_quick PROPERTIES TIMEOUT 600 LABELS crash)
