# cluster: the server's pure PG decisions (server/srv_pg.c).
keel_unit_test(test_srv_pg SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_srv_pg.c
  ${CMAKE_SOURCE_DIR}/server/srv_pg.c LIBS keel_proto)
# server/bs_repl.c: per-block versions and exact-version pushes on the ram device.
keel_unit_test(test_bs_repl SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_bs_repl.c LIBS keel_bs
  TIMEOUT 120)
# The server's layer decisions (server/srv_layer.c): ReadChain checks,
# fencing, chain merges, recovery's filter, usage report selection.
keel_unit_test(test_srv_layer SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_srv_layer.c
  ${CMAKE_SOURCE_DIR}/server/srv_layer.c LIBS keel_proto)
# keel-server's layer handling against real keel-servers fed maps with layer
# lists by a fake mgmt (tests/cluster/fake_mgmt.c): chain reads, EROFS
# fencing, the drain before map replies, GC on every replica, MG_USAGE.
add_executable(keel-fake-mgmt ${CMAKE_CURRENT_LIST_DIR}/fake_mgmt.c)
target_link_libraries(keel-fake-mgmt PRIVATE keel_proto)
add_test(NAME cluster_srv_layers
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/t_srv_layers.py ${CMAKE_BINARY_DIR})
set_tests_properties(cluster_srv_layers PROPERTIES TIMEOUT 300 LABELS "functional;cluster"
  REQUIRED_FILES "$<TARGET_FILE:keel-server>;$<TARGET_FILE:keel-fake-mgmt>")
