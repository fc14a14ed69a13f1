# bs_dev backends. One binary, two ctest entries: ram + sim always run;
# uring needs io_uring and O_DIRECT and exits 77 without them: ctest counts that as a failure (no skip to green).
# reactor_sqe is wrapped so the uring test can shorten a queued SQE and
# exercise the short-transfer path.
keel_unit_test(test_bs_dev
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_bs_dev.c
  LIBS keel_bs
  ARGS mem
  TIMEOUT 300)
target_link_options(test_bs_dev PRIVATE -Wl,--wrap=reactor_sqe)
add_test(NAME test_bs_dev_uring COMMAND test_bs_dev uring)
set_tests_properties(test_bs_dev_uring PROPERTIES TIMEOUT 120)
