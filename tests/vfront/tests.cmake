# keel-vfront: a vhost-user-blk test frontend playing QEMU's part (verify,
# bench, the malicious-guest corpus), its unit test, and the tests that
# drive it against qemu-storage-daemon (the reference backend) and
# keel-export.
set(KEEL_VF_DIR ${CMAKE_CURRENT_LIST_DIR})
add_library(keel_vfront STATIC
  ${KEEL_VF_DIR}/vf_proto.c
  ${KEEL_VF_DIR}/vf_ring.c
  ${KEEL_VF_DIR}/vf_blk.c
  ${KEEL_VF_DIR}/vf_verify.c
  ${KEEL_VF_DIR}/vf_bench.c
  ${KEEL_VF_DIR}/vf_corpus.c
  ${KEEL_VF_DIR}/vf_corpus_cases.c)
target_link_libraries(keel_vfront PUBLIC keel_common m)
add_executable(keel-vfront ${KEEL_VF_DIR}/vf_main.c)
target_link_libraries(keel-vfront PRIVATE keel_vfront)

keel_unit_test(test_vfront SOURCES ${KEEL_VF_DIR}/test_vfront.c LIBS keel_vfront)

# The frontend against the reference backend (validates keel-vfront itself).
add_test(NAME vfront_qsd
  COMMAND /usr/bin/python3 ${KEEL_VF_DIR}/t_vfront_qsd.py ${CMAKE_BINARY_DIR})
set_tests_properties(vfront_qsd PROPERTIES TIMEOUT 300 LABELS "functional;vhost")

# keel-export's vhost-user-blk backend: the same checks plus the
# malicious-guest corpus.
add_test(NAME vfront_keel
  COMMAND /usr/bin/python3 ${KEEL_VF_DIR}/t_vfront_keel.py ${CMAKE_BINARY_DIR})
set_tests_properties(vfront_keel PROPERTIES TIMEOUT 900 LABELS "functional;vhost")
