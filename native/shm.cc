// Sluice shared-memory addon: maps one POSIX shared-memory segment into the calling process and
// hands it to JavaScript as an external ArrayBuffer.
//
// The addon is deliberately mechanism only. What the bytes mean (the region table, versioning,
// counters), how segments are named and when a stale one may be removed are policy, and live in
// src/shm/ where they can be read and tested next to their users. Keeping this file small keeps the
// part that can crash the process small too.
//
// Four functions for segments (and, from limit-windows.cc, the limiter's window charges):
//   create(name, bytes) -> ArrayBuffer   new segment, zero-filled, fails if the name exists
//   open(name)          -> ArrayBuffer   existing segment, size taken from the segment itself
//   unlink(name)        -> boolean       false when the name did not exist
//   list(prefix)        -> string[]      segment names starting with prefix (for stale cleanup)
//
// Every failure throws a JS Error whose message carries the operation, the name and strerror(errno),
// with `code` set to the errno name (EEXIST, ENOENT, ...) and `errno` to its number so callers can
// branch without parsing text.

#include <napi.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

// limit-windows.cc: the limiter's window charges, in the same binary.
void InitLimitWindows(napi_env env, napi_value exports);

namespace {

// Names are "/" plus this many characters at most. NAME_MAX for a file in /dev/shm is 255; a tighter
// bound leaves room for platforms with shorter limits and catches garbage early.
constexpr size_t kMaxNameChars = 200;

// An upper bound on a segment's size. The gateway needs a few MiB; a value far beyond that is a bug in
// the caller (a byte count computed wrongly), and refusing it beats reserving gigabytes of tmpfs.
constexpr double kMaxSegmentBytes = 1024.0 * 1024.0 * 1024.0;

// Where Linux exposes POSIX shared-memory objects as files. list() reads it; the other calls go
// through shm_open/shm_unlink and never touch the directory directly.
constexpr const char* kShmDir = "/dev/shm";

const char* ErrnoName(int err) {
  switch (err) {
    case EEXIST: return "EEXIST";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case ENOSPC: return "ENOSPC";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EFBIG: return "EFBIG";
    case ENOTDIR: return "ENOTDIR";
    default: return "EUNKNOWN";
  }
}

// Throws a pending JS exception; callers return right after (C++ exceptions are disabled, so the
// exception only surfaces once control is back in JavaScript).
void ThrowErrno(Napi::Env env, const std::string& op, const std::string& name, int err) {
  Napi::Error error = Napi::Error::New(env, op + " " + name + ": " + std::strerror(err));
  error.Set("code", Napi::String::New(env, ErrnoName(err)));
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, op));
  error.ThrowAsJavaScriptException();
}

void ThrowType(Napi::Env env, const std::string& message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
}

bool IsNameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// A segment name is "/" followed by 1..kMaxNameChars characters from [A-Za-z0-9._-], not starting
// with "." (so "/." and "/.." can never reach shm_open or shm_unlink). A prefix for list() follows
// the same rules but may be empty after the slash.
bool IsValidName(const std::string& name, bool allowEmptyTail) {
  if (name.empty() || name[0] != '/') return false;
  const size_t tail = name.size() - 1;
  if (tail > kMaxNameChars) return false;
  if (tail == 0) return allowEmptyTail;
  if (name[1] == '.') return false;
  for (size_t i = 1; i < name.size(); ++i) {
    if (!IsNameChar(name[i])) return false;
  }
  return true;
}

// Reads and validates the name argument; on failure a TypeError is pending and false is returned.
bool NameArg(const Napi::CallbackInfo& info, size_t index, bool allowEmptyTail, std::string* out) {
  Napi::Env env = info.Env();
  if (info.Length() <= index || !info[index].IsString()) {
    ThrowType(env, "shm: expected a segment name string");
    return false;
  }
  *out = info[index].As<Napi::String>().Utf8Value();
  if (!IsValidName(*out, allowEmptyTail)) {
    ThrowType(env, "shm: invalid segment name \"" + *out +
                       "\": expected \"/\" then 1-200 characters of [A-Za-z0-9._-], not starting "
                       "with \".\"");
    return false;
  }
  return true;
}

// The finalizer's hint: how many bytes were mapped, so munmap releases exactly this mapping.
struct Mapping {
  size_t bytes;
};

// Wraps a mapping this addon made in an external ArrayBuffer. The finalizer runs when V8 collects the
// buffer (every typed view holds it alive, so no view can outlive the mapping) and unmaps exactly the
// range that mmap returned; it never frees memory it did not map.
Napi::Value WrapMapping(Napi::Env env, void* base, size_t bytes) {
  Mapping* hint = new Mapping{bytes};
  return Napi::ArrayBuffer::New(
      env, base, bytes,
      [](Napi::Env /*env*/, void* data, Mapping* mapping) {
        munmap(data, mapping->bytes);
        delete mapping;
      },
      hint);
}

Napi::Value Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!NameArg(info, 0, false, &name)) return env.Undefined();
  if (info.Length() < 2 || !info[1].IsNumber()) {
    ThrowType(env, "shm.create: expected a byte count");
    return env.Undefined();
  }
  const double requested = info[1].As<Napi::Number>().DoubleValue();
  if (!(requested >= 1 && requested <= kMaxSegmentBytes) ||
      requested != static_cast<double>(static_cast<uint64_t>(requested))) {
    ThrowType(env, "shm.create: byte count must be an integer between 1 and 1 GiB");
    return env.Undefined();
  }
  const size_t bytes = static_cast<size_t>(requested);

  // O_EXCL: two supervisors for the same name must not silently share (and re-zero) one segment.
  const int fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) {
    ThrowErrno(env, "shm_open", name, errno);
    return env.Undefined();
  }
  // On tmpfs, ftruncate of a new object yields zero-filled pages; no memset is needed.
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    const int err = errno;
    close(fd);
    shm_unlink(name.c_str());  // never leave a half-made segment behind under our name
    ThrowErrno(env, "ftruncate", name, err);
    return env.Undefined();
  }
  void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int mapErr = errno;
  // The mapping keeps the object alive; the descriptor is no longer needed either way.
  close(fd);
  if (base == MAP_FAILED) {
    shm_unlink(name.c_str());
    ThrowErrno(env, "mmap", name, mapErr);
    return env.Undefined();
  }
  return WrapMapping(env, base, bytes);
}

Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!NameArg(info, 0, false, &name)) return env.Undefined();

  const int fd = shm_open(name.c_str(), O_RDWR, 0);
  if (fd < 0) {
    ThrowErrno(env, "shm_open", name, errno);
    return env.Undefined();
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    ThrowErrno(env, "fstat", name, err);
    return env.Undefined();
  }
  // A zero-size object is one whose creator has not run ftruncate yet (or a foreign object); mmap
  // would fail with EINVAL, which says less than this.
  if (st.st_size <= 0) {
    close(fd);
    Napi::Error::New(env, "shm.open " + name + ": segment has zero size (not initialised yet?)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const size_t bytes = static_cast<size_t>(st.st_size);
  void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int mapErr = errno;
  close(fd);
  if (base == MAP_FAILED) {
    ThrowErrno(env, "mmap", name, mapErr);
    return env.Undefined();
  }
  return WrapMapping(env, base, bytes);
}

Napi::Value Unlink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!NameArg(info, 0, false, &name)) return env.Undefined();
  if (shm_unlink(name.c_str()) == 0) return Napi::Boolean::New(env, true);
  // Someone else removed it first: for cleanup that is success, reported as "nothing removed".
  if (errno == ENOENT) return Napi::Boolean::New(env, false);
  ThrowErrno(env, "shm_unlink", name, errno);
  return env.Undefined();
}

Napi::Value List(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string prefix;
  if (!NameArg(info, 0, true, &prefix)) return env.Undefined();
  // Entries in /dev/shm carry no leading slash; names handed to JS do, matching create/open.
  const std::string bare = prefix.substr(1);

  DIR* dir = opendir(kShmDir);
  if (dir == nullptr) {
    ThrowErrno(env, "opendir", kShmDir, errno);
    return env.Undefined();
  }
  std::vector<std::string> names;
  int err = 0;
  for (;;) {
    // readdir signals both "end" and "error" with nullptr; only errno tells them apart.
    errno = 0;
    const struct dirent* entry = readdir(dir);
    if (entry == nullptr) {
      err = errno;
      break;
    }
    const std::string file(entry->d_name);
    if (file.compare(0, bare.size(), bare) != 0) continue;
    const std::string name = "/" + file;
    // Skip what create/open/unlink would refuse anyway, so every listed name is usable as is.
    if (!IsValidName(name, false)) continue;
    names.push_back(name);
  }
  closedir(dir);
  if (err != 0) {
    ThrowErrno(env, "readdir", kShmDir, err);
    return env.Undefined();
  }
  Napi::Array result = Napi::Array::New(env, names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    result.Set(static_cast<uint32_t>(i), Napi::String::New(env, names[i]));
  }
  return result;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitLimitWindows(env, exports);
  exports.Set("create", Napi::Function::New(env, Create, "create"));
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("unlink", Napi::Function::New(env, Unlink, "unlink"));
  exports.Set("list", Napi::Function::New(env, List, "list"));
  return exports;
}

}  // namespace

NODE_API_MODULE(shm, Init)
