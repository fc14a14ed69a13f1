# Functional tests: real keel-server processes on files in a temp dir, driven
# by keel-bench and by a raw Python wire client (tests/functional/keeltest.py,
# /usr/bin/python3 stdlib only). Numbered scenarios, sheepdog style.
set(KEEL_FT_DIR ${CMAKE_CURRENT_LIST_DIR})
set(KEEL_FT_PY /usr/bin/python3)

foreach(t
    t01_basic
    t02_bad_input
    t03_enospc
    t04_bitrot
    t05_config
    t06_blockdev)
  add_test(NAME functional_${t}
    COMMAND ${KEEL_FT_PY} ${KEEL_FT_DIR}/${t}.py $<TARGET_FILE:keel-server>
            $<TARGET_FILE:keel-bench>)
  set_tests_properties(functional_${t} PROPERTIES TIMEOUT 300 LABELS functional)
endforeach()
set_tests_properties(functional_t02_bad_input PROPERTIES LABELS "functional;slow")
