# keel-mgmt and keelctl: unit tests (store, validation) and one functional
# scenario against a real keel-mgmt with fake servers on its cluster port.
keel_unit_test(test_mg_store SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_mg_store.c LIBS keel_mg)
keel_unit_test(test_mg_merge SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_mg_merge.c LIBS keel_mg)
keel_unit_test(test_mg_valid SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_mg_valid.c LIBS keel_mg)
# REST API tokens: token files, headers, the check, tools finding their token.
keel_unit_test(test_mg_auth SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_mg_auth.c LIBS keel_mg keel_rest)

add_executable(mg_fake_server ${CMAKE_CURRENT_LIST_DIR}/fake_server.c)
target_link_libraries(mg_fake_server PRIVATE keel_mg)

add_test(NAME functional_mgmt
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/t_mgmt.py $<TARGET_FILE:keel-mgmt>
          $<TARGET_FILE:keelctl> $<TARGET_FILE:mg_fake_server>)
set_tests_properties(functional_mgmt PROPERTIES TIMEOUT 180 LABELS functional)
