# tools: the block-history checker (keel-histcheck) and its unit test.
add_library(keel_histcheck STATIC ${CMAKE_CURRENT_LIST_DIR}/kh_check.c)
add_executable(keel-histcheck ${CMAKE_CURRENT_LIST_DIR}/keel-histcheck.c)
target_link_libraries(keel-histcheck PRIVATE keel_histcheck)
keel_unit_test(test_histcheck SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_histcheck.c
  LIBS keel_histcheck)

# keel-export: a local file through keel-client's exports (vhost-user-blk,
# NBD), for the export tests, fuzz corpus and benchmarks.
add_executable(keel-export ${CMAKE_CURRENT_LIST_DIR}/keel-export.c)
target_link_libraries(keel-export PRIVATE keel_export)

# keel-fsx: model-based random test of volumes, snapshots and clones
# (tests/cluster_ft/t_fsx.py runs it against a cluster).
add_executable(keel-fsx ${CMAKE_CURRENT_LIST_DIR}/keel-fsx.c)
target_link_libraries(keel-fsx PRIVATE keel keel_rest)

# keel-snapcheck: snapshots taken every second under a verified write load
# hold exactly the writes completed before them (tests/cluster_ft/
# t_snapshot_load.py runs it); its checker is a library for the unit test.
add_library(keel_snapcheck STATIC ${CMAKE_CURRENT_LIST_DIR}/sc_check.c)
add_executable(keel-snapcheck ${CMAKE_CURRENT_LIST_DIR}/keel-snapcheck.c)
target_link_libraries(keel-snapcheck PRIVATE keel_snapcheck keel keel_rest pthread)
keel_unit_test(test_snapcheck SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_snapcheck.c
  LIBS keel_snapcheck)
