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

# libFuzzer targets (tests/CMakeLists.txt, WITH_FUZZ): the vhost-user
# message checks, the ring walker, the virtio-blk parser and the whole
# backend (fuzz_vhost_blk).
if(WITH_FUZZ)
  set(VHOST_FUZZ_SOURCES ${CMAKE_SOURCE_DIR}/client/vhost_user.c
    ${CMAKE_SOURCE_DIR}/client/vhost_vring.c ${CMAKE_SOURCE_DIR}/client/virtio_blk.c)
  foreach(f fuzz_vhost_user fuzz_vhost_vring fuzz_virtio_blk)
    keel_fuzz_target(${f} SOURCES ${CMAKE_CURRENT_LIST_DIR}/${f}.c ${VHOST_FUZZ_SOURCES}
      LIBS PkgConfig::URING)
  endforeach()
  find_package(Threads REQUIRED)
  # The whole backend behind a real socket and reactor (no blk_file, no
  # other keel code): message handlers, rings in fuzzed guest memory.
  keel_fuzz_target(fuzz_vhost_blk SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_vhost_blk.c
    ${VHOST_FUZZ_SOURCES} ${CMAKE_SOURCE_DIR}/client/vhost_blk.c
    ${CMAKE_SOURCE_DIR}/client/blk_dev.c ${CMAKE_SOURCE_DIR}/common/reactor.c
    ${CMAKE_SOURCE_DIR}/common/xport_mem.c ${CMAKE_SOURCE_DIR}/common/log.c
    LIBS PkgConfig::URING Threads::Threads)
endif()
