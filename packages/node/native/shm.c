/*
 * Maps a shared memory segment into this process as an ArrayBuffer: what Node cannot do by
 * itself. A worker's big reply is then read where the worker wrote it, with no copy into new
 * memory (whose first touch, not the copy, is what costs), and this process's own segments are
 * written with a memcpy rather than a pwrite. The mapping lives as long as the ArrayBuffer: V8
 * unmaps it when that is collected.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void unmap(napi_env env, void* data, void* hint) {
  (void)env;
  munmap(data, (size_t)hint);
}

static napi_value fail(napi_env env, const char* what, const char* path, int err) {
  char message[512];
  snprintf(message, sizeof message, "%s %s: %s", what, path, strerror(err));
  const char* code = err == ENOENT ? "ENOENT" : err == ENOMEM ? "ENOMEM" : err == EACCES ? "EACCES" : err == ENOSPC ? "ENOSPC" : "EIO";
  napi_throw_error(env, code, message);
  return NULL;
}

/* map(path: string, length: number): ArrayBuffer — the first `length` bytes of the file, shared. */
static napi_value map(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2) {
    napi_throw_type_error(env, NULL, "map(path, length)");
    return NULL;
  }
  char path[256];
  size_t path_length;
  double requested;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &path_length) != napi_ok || path_length >= sizeof path - 1 ||
      napi_get_value_double(env, argv[1], &requested) != napi_ok || !(requested >= 1) || requested > 9007199254740991.0) {
    napi_throw_type_error(env, NULL, "map(path, length): a path and a positive length");
    return NULL;
  }
  size_t length = (size_t)requested;
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return fail(env, "cannot open", path, errno);
  off_t end = lseek(fd, 0, SEEK_END);
  if (end < 0) {
    int err = errno;
    close(fd);
    return fail(env, "cannot size", path, err);
  }
  if ((size_t)end < length) {
    close(fd);
    char message[512];
    snprintf(message, sizeof message, "%s holds %lld bytes, not %zu", path, (long long)end, length);
    napi_throw_range_error(env, NULL, message);
    return NULL;
  }
  void* data = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int err = errno;
  close(fd);
  if (data == MAP_FAILED) return fail(env, "cannot map", path, err);
  napi_value buffer;
  if (napi_create_external_arraybuffer(env, data, length, unmap, (void*)length, &buffer) != napi_ok) {
    munmap(data, length);
    napi_throw_error(env, NULL, "cannot make an ArrayBuffer over a mapping");
    return NULL;
  }
  return buffer;
}

static void release(napi_env env, void* data, void* hint) {
  (void)data;
  napi_delete_reference(env, (napi_ref)hint);
}

/*
 * alias(buffer: ArrayBuffer, length: number): ArrayBuffer — a second ArrayBuffer over the first
 * `length` bytes of `buffer`'s memory (a mapping made by `map`), which keeps `buffer` alive as
 * long as it lives: a result held apart from this process's own use of the mapping, with its
 * pages already mapped.
 */
static napi_value alias(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void* data;
  size_t byte_length;
  double requested;
  bool is_buffer = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 ||
      napi_is_arraybuffer(env, argv[0], &is_buffer) != napi_ok || !is_buffer ||
      napi_get_arraybuffer_info(env, argv[0], &data, &byte_length) != napi_ok ||
      napi_get_value_double(env, argv[1], &requested) != napi_ok || !(requested >= 1) || requested > (double)byte_length) {
    napi_throw_type_error(env, NULL, "alias(buffer, length): an ArrayBuffer and a length within it");
    return NULL;
  }
  napi_ref ref;
  if (napi_create_reference(env, argv[0], 1, &ref) != napi_ok) {
    napi_throw_error(env, NULL, "cannot hold the mapping");
    return NULL;
  }
  napi_value result;
  if (napi_create_external_arraybuffer(env, data, (size_t)requested, release, ref, &result) != napi_ok) {
    napi_delete_reference(env, ref);
    napi_throw_error(env, NULL, "cannot make an ArrayBuffer over a mapping");
    return NULL;
  }
  return result;
}

/*
 * reserve(fd: number, length: number): the file's blocks for its first `length` bytes, allocated
 * now (posix_fallocate): a full tmpfs is an error here rather than a SIGBUS when a mapping of the
 * file is written.
 */
static napi_value reserve(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  double requested;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_double(env, argv[1], &requested) != napi_ok ||
      !(requested >= 1) || requested > 9007199254740991.0) {
    napi_throw_type_error(env, NULL, "reserve(fd, length): a descriptor and a positive length");
    return NULL;
  }
  int err = posix_fallocate(fd, 0, (off_t)requested);
  if (err != 0) {
    char path[32];
    snprintf(path, sizeof path, "descriptor %d", fd);
    return fail(env, "cannot allocate", path, err);
  }
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor functions[] = {
    {"map", NULL, map, NULL, NULL, NULL, napi_enumerable, NULL},
    {"alias", NULL, alias, NULL, NULL, NULL, napi_enumerable, NULL},
    {"reserve", NULL, reserve, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, 3, functions) != napi_ok) return NULL;
  return exports;
}
