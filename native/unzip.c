/*
 * pyferry's one native piece: unpacking zip entries for the installer, with libdeflate and the
 * OpenSSL inside Node.
 *
 * inflateRaw(src, dst) decodes the whole DEFLATE stream `src` into `dst` and returns how many
 * bytes it wrote; it throws when the stream is corrupt or holds more than `dst` has room for.
 *
 * extractFiles(source, dir, names, meta, digests) writes entries of a zip into the folder `dir`
 * and puts each one's sha256 in `digests`. It is the installer's inner loop in C: done in
 * JavaScript, the per-entry work around the decoding and hashing (buffers, hash objects, the
 * collections they set off, compiling the loop in each thread) cost as much CPU as the decoding.
 * src/install/native.ts falls back to zlib and JavaScript when this addon was not built.
 */
#include <errno.h>
#include <fcntl.h>
#include <libdeflate.h>
#include <node_api.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Each thread (worker) loads its own instance of the addon, with its own decoder and hasher. */
struct instance {
  struct libdeflate_decompressor *inflater;
  EVP_MD *sha256;
  EVP_MD_CTX *hasher;
  unsigned char *scratch;
  size_t scratch_len;
};

static void free_instance(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct instance *in = data;
  libdeflate_free_decompressor(in->inflater);
  EVP_MD_CTX_free(in->hasher);
  EVP_MD_free(in->sha256);
  free(in->scratch);
  free(in);
}

static struct instance *instance_of(napi_env env) {
  struct instance *in = NULL;
  if (napi_get_instance_data(env, (void **)&in) != napi_ok || in == NULL) {
    napi_throw_error(env, NULL, "the native addon was not set up");
    return NULL;
  }
  return in;
}

/* Room for `len` bytes in the instance's scratch buffer; NULL when memory runs out. */
static unsigned char *scratch(struct instance *in, size_t len) {
  if (in->scratch_len < len) {
    size_t want = len > 2 * in->scratch_len ? len : 2 * in->scratch_len;
    unsigned char *grown = realloc(in->scratch, want ? want : 1);
    if (grown == NULL) return NULL;
    in->scratch = grown;
    in->scratch_len = want;
  }
  return in->scratch;
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

/* The messages both decoders give (src/install/inflate.ts says the same for zlib). */
static const char *const TOO_LONG = "it inflates to more than its declared size";
static const char *const INVALID = "its compressed data is invalid";
static const char *const WRONG_SIZE = "its size differs from the declared one";
static const char *const ENDS_EARLY = "the archive ends early";
static const char *const NO_MEMORY = "there is not enough memory for it";

/* A call's first `count` arguments in `argv`; false, with a TypeError saying `usage`, if fewer. */
static int arguments(napi_env env, napi_callback_info info, size_t count, napi_value *argv,
                     const char *usage) {
  size_t given = count;
  if (napi_get_cb_info(env, info, &given, argv, NULL, NULL) != napi_ok || given < count) {
    napi_throw_type_error(env, NULL, usage);
    return 0;
  }
  return 1;
}

static napi_value inflate_raw(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!arguments(env, info, 2, argv, "inflateRaw takes a source and a destination")) return NULL;
  void *src = NULL, *dst = NULL;
  size_t src_len = 0, dst_len = 0;
  if (!bytes_of(env, argv[0], "the source must be a Uint8Array", &src, &src_len) ||
      !bytes_of(env, argv[1], "the destination must be a Uint8Array", &dst, &dst_len)) {
    return NULL;
  }
  struct instance *in = instance_of(env);
  if (in == NULL) return NULL;
  size_t written = 0;
  enum libdeflate_result r =
      libdeflate_deflate_decompress(in->inflater, src, src_len, dst, dst_len, &written);
  if (r == LIBDEFLATE_INSUFFICIENT_SPACE) {
    napi_throw_error(env, NULL, TOO_LONG);
    return NULL;
  }
  if (r != LIBDEFLATE_SUCCESS) {
    napi_throw_error(env, NULL, INVALID);
    return NULL;
  }
  napi_value result;
  napi_create_double(env, (double)written, &result);
  return result;
}

/*
 * Where an entry went wrong: `error` names a fault of the archive, else `err` is the errno of
 * the call `syscall`.
 */
struct failure {
  const char *error;
  int err;
  const char *syscall;
};

static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* The whole of `len` bytes at `at` of the file `fd`; false at its end or on a read error. */
static int read_at(int fd, unsigned char *buf, size_t len, uint64_t at, size_t *got) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, buf + done, len - done, (off_t)(at + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return 0;
    if (n == 0) break;
    done += (size_t)n;
  }
  *got = done;
  return 1;
}

/* Room after a local header's name for an extra field longer than the central directory's. */
#define EXTRA_SLACK 1024

/*
 * The compressed bytes of the entry whose local header is at `at`, `csize` long: in `whole`
 * (the archive in memory, `whole_len` bytes) or read from `fd` into the scratch buffer.
 */
static const unsigned char *entry_data(struct instance *in, const unsigned char *whole,
                                       size_t whole_len, int fd, uint64_t at, uint64_t csize,
                                       struct failure *f) {
  if (whole != NULL) {
    if (at > whole_len || whole_len - at < 30) goto early;
    const unsigned char *h = whole + at;
    if (memcmp(h, "PK\3\4", 4) != 0) goto no_header;
    uint64_t skip = 30u + le16(h + 26) + le16(h + 28);
    if (whole_len - at < skip || whole_len - at - skip < csize) goto early;
    return h + skip;
  }
  size_t want = 30 + EXTRA_SLACK + (size_t)csize, got = 0;
  unsigned char *buf = scratch(in, want);
  if (buf == NULL) goto memory;
  if (!read_at(fd, buf, want, at, &got)) goto io;
  if (got < 30) goto early;
  if (memcmp(buf, "PK\3\4", 4) != 0) goto no_header;
  size_t skip = 30u + le16(buf + 26) + le16(buf + 28);
  if (got < skip || got - skip < csize) {
    /* A local extra field longer than the slack: read again, all of it. */
    buf = scratch(in, skip + (size_t)csize);
    if (buf == NULL) goto memory;
    if (!read_at(fd, buf, skip + (size_t)csize, at, &got)) goto io;
    if (got < skip + csize) goto early;
  }
  return buf + skip;
early:
  f->error = ENDS_EARLY;
  return NULL;
no_header:
  f->error = "a local file header is missing";
  return NULL;
memory:
  f->error = NO_MEMORY;
  return NULL;
io:
  f->error = "the archive could not be read";
  return NULL;
}

/* Write `len` bytes of `data` to the new file `name` under `dir`; false, with `f` set, if not. */
static int write_file(int dir, const char *name, const unsigned char *data, size_t len,
                      mode_t mode, struct failure *f) {
  int fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    f->err = errno;
    f->syscall = "open";
    return 0;
  }
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, data + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      f->err = errno;
      f->syscall = "write";
      close(fd);
      return 0;
    }
    done += (size_t)n;
  }
  /* A full disk may only show on close (NFS, quotas). */
  if (close(fd) != 0) {
    f->err = errno;
    f->syscall = "close";
    return 0;
  }
  return 1;
}

/*
 * One entry: its bytes (inflated into the scratch buffer past `data_room`, or as stored),
 * hashed into `digest` and written. `meta` is its offset, compressed size, size and flags.
 */
static int extract_one(struct instance *in, const unsigned char *whole, size_t whole_len, int fd,
                       int dir, const char *name, const double *meta, unsigned char *digest,
                       struct failure *f) {
  uint64_t at = (uint64_t)meta[0], csize = (uint64_t)meta[1], size = (uint64_t)meta[2];
  unsigned flags = (unsigned)meta[3];
  int deflated = (flags & 1) != 0;
  mode_t mode = (flags & 2) ? 0555 : 0444;
  if (!deflated && csize != size) {
    f->error = WRONG_SIZE;
    return 0;
  }
  const unsigned char *raw = entry_data(in, whole, whole_len, fd, at, csize, f);
  if (raw == NULL) return 0;
  const unsigned char *data = raw;
  if (deflated) {
    /* The scratch buffer may hold `raw` (read from fd): inflate past it, then never move it. */
    size_t raw_end = whole != NULL ? 0 : (size_t)(raw - in->scratch) + (size_t)csize;
    size_t offset = raw_end;
    unsigned char *base = in->scratch;
    if (scratch(in, offset + (size_t)size + 1) == NULL) {
      f->error = NO_MEMORY;
      return 0;
    }
    if (whole == NULL) raw = in->scratch + (raw - base);
    unsigned char *out = in->scratch + offset;
    size_t written = 0;
    enum libdeflate_result r =
        libdeflate_deflate_decompress(in->inflater, raw, (size_t)csize, out, (size_t)size,
                                      &written);
    if (r == LIBDEFLATE_INSUFFICIENT_SPACE) {
      f->error = TOO_LONG;
      return 0;
    }
    if (r != LIBDEFLATE_SUCCESS) {
      f->error = INVALID;
      return 0;
    }
    if (written != size) {
      f->error = WRONG_SIZE;
      return 0;
    }
    data = out;
  }
  if (EVP_DigestInit_ex2(in->hasher, in->sha256, NULL) != 1 ||
      EVP_DigestUpdate(in->hasher, data, (size_t)size) != 1 ||
      EVP_DigestFinal_ex(in->hasher, digest, NULL) != 1) {
    f->error = "it could not be hashed";
    return 0;
  }
  return write_file(dir, name, data, (size_t)size, mode, f);
}

/*
 * Throw an Error for entry `index` (none when negative: the folder) with `index`, and `errno`
 * when writing failed.
 */
static void throw_failure(napi_env env, int64_t index, const struct failure *f) {
  napi_value message, error, value;
  napi_create_string_utf8(env, f->error ? f->error : strerror(f->err), NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, NULL, message, &error);
  if (index >= 0) {
    napi_create_int64(env, index, &value);
    napi_set_named_property(env, error, "index", value);
  }
  if (f->error == NULL) {
    napi_create_int32(env, f->err, &value);
    napi_set_named_property(env, error, "errno", value);
    napi_create_string_utf8(env, f->syscall, NAPI_AUTO_LENGTH, &value);
    napi_set_named_property(env, error, "syscall", value);
  }
  napi_throw(env, error);
}

/*
 * extractFiles(source, dir, names, meta, digests): `source` is the archive's bytes or an open
 * descriptor of it; `dir` the folder (its subfolders made) the entries go to; `names` their
 * paths under it, each ended by a NUL; `meta` a Float64Array of four numbers per entry (local
 * header offset, compressed size, size, flags: 1 deflated, 2 executable); `digests` 32 bytes
 * per entry for their sha256. Stops at the first failure, leaving what it wrote.
 */
static napi_value extract_files(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!arguments(env, info, 5, argv, "extractFiles takes five arguments")) return NULL;
  struct instance *in = instance_of(env);
  if (in == NULL) return NULL;
  const unsigned char *whole = NULL;
  size_t whole_len = 0;
  int fd = -1;
  napi_valuetype type;
  napi_typeof(env, argv[0], &type);
  if (type == napi_number) {
    napi_get_value_int32(env, argv[0], &fd);
  } else if (!bytes_of(env, argv[0], "the source must be a Uint8Array or a descriptor",
                       (void **)&whole, &whole_len)) {
    return NULL;
  }
  char dir_path[4096];
  size_t dir_len = 0;
  if (napi_get_value_string_utf8(env, argv[1], dir_path, sizeof dir_path, &dir_len) != napi_ok) {
    napi_throw_type_error(env, NULL, "the folder must be a string");
    return NULL;
  }
  if (dir_len >= sizeof dir_path - 1) {
    struct failure f = {NULL, ENAMETOOLONG, "open"};
    throw_failure(env, -1, &f);
    return NULL;
  }
  void *names_data = NULL, *digests_data = NULL, *meta_data = NULL;
  size_t names_len = 0, digests_len = 0, meta_count = 0;
  napi_typedarray_type meta_type;
  bool is_array = false;
  if (!bytes_of(env, argv[2], "the names must be a Uint8Array", &names_data, &names_len) ||
      !bytes_of(env, argv[4], "the digests must be a Uint8Array", &digests_data, &digests_len)) {
    return NULL;
  }
  if (napi_is_typedarray(env, argv[3], &is_array) != napi_ok || !is_array ||
      napi_get_typedarray_info(env, argv[3], &meta_type, &meta_count, &meta_data, NULL, NULL) !=
          napi_ok ||
      meta_type != napi_float64_array || meta_count % 4 != 0 || digests_len < meta_count / 4 * 32) {
    napi_throw_type_error(env, NULL, "the entries' numbers do not match their digests");
    return NULL;
  }
  const char *names = names_data;
  if (names_len == 0 || names[names_len - 1] != '\0') {
    napi_throw_type_error(env, NULL, "each name must end with a NUL");
    return NULL;
  }
  int dir = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) {
    struct failure f = {NULL, errno, "open"};
    throw_failure(env, -1, &f);
    return NULL;
  }
  const char *name = names, *end = names + names_len;
  uint32_t count = (uint32_t)(meta_count / 4);
  for (uint32_t i = 0; i < count; i++) {
    struct failure f = {NULL, 0, NULL};
    if (name >= end) {
      close(dir);
      napi_throw_type_error(env, NULL, "fewer names than entries");
      return NULL;
    }
    /* The buffer may move between entries; `whole` is the caller's and stays. */
    if (!extract_one(in, whole, whole_len, fd, dir, name, (const double *)meta_data + 4 * i,
                     (unsigned char *)digests_data + 32 * i, &f)) {
      close(dir);
      throw_failure(env, i, &f);
      return NULL;
    }
    name += strlen(name) + 1;
  }
  close(dir);
  return NULL;
}

NAPI_MODULE_INIT() {
  struct instance *in = calloc(1, sizeof *in);
  if (in != NULL) {
    in->inflater = libdeflate_alloc_decompressor();
    in->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    in->hasher = EVP_MD_CTX_new();
  }
  if (in == NULL || in->inflater == NULL || in->sha256 == NULL || in->hasher == NULL ||
      napi_set_instance_data(env, in, free_instance, NULL) != napi_ok) {
    if (in != NULL) free_instance(env, in, NULL);
    napi_throw_error(env, NULL, "the native addon could not allocate its decoder and hasher");
    return NULL;
  }
  napi_value fn;
  napi_create_function(env, "inflateRaw", NAPI_AUTO_LENGTH, inflate_raw, NULL, &fn);
  napi_set_named_property(env, exports, "inflateRaw", fn);
  napi_create_function(env, "extractFiles", NAPI_AUTO_LENGTH, extract_files, NULL, &fn);
  napi_set_named_property(env, exports, "extractFiles", fn);
  return exports;
}
