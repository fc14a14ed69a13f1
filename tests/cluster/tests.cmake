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
