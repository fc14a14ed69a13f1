# vhost: the vhost-user-blk backend (client/vhost_*.c, client/virtio_blk.c).
# Pure parsers and the ring walker are tested exhaustively without a
# transport; test_vhost_blk drives the whole backend from an in-process
# fake frontend over a real unix socket (needs io_uring: exits 77, a
# failure under ctest, without it).
keel_unit_test(test_virtio_blk SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_virtio_blk.c
  LIBS keel_export TIMEOUT 30)
keel_unit_test(test_vhost_vring SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_vhost_vring.c
  LIBS keel_export TIMEOUT 30)
keel_unit_test(test_vhost_user SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_vhost_user.c
  LIBS keel_export TIMEOUT 30)
keel_unit_test(test_vhost_blk SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_vhost_blk.c
  LIBS keel_export TIMEOUT 60)
