/*
 * Model allowlist (ABI 0.2.1), in C with wasi-libc: answers 403 for requests whose model (the `model`
 * property) is not in the configured list. Configuration: the allowed names, comma-separated, as a
 * plain string, e.g. "gpt-4o-mini,claude-3-5-haiku".
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
#define EXPORT(name) __attribute__((export_name(#name)))

IMPORT(proxy_get_buffer_bytes)
uint32_t proxy_get_buffer_bytes(uint32_t type, uint32_t start, uint32_t max, char **data, size_t *size);
IMPORT(proxy_get_property)
uint32_t proxy_get_property(const char *path, size_t path_size, char **data, size_t *size);
IMPORT(proxy_send_local_response)
uint32_t proxy_send_local_response(uint32_t status, const char *details, size_t details_size, const char *body,
                                   size_t body_size, const char *headers, size_t headers_size, int32_t grpc);
IMPORT(proxy_log)
uint32_t proxy_log(uint32_t level, const char *message, size_t size);

enum { PLUGIN_CONFIGURATION = 7, LOG_INFO = 2, CONTINUE = 0, PAUSE = 1 };

static char *allowed = NULL; /* the configuration, commas replaced by NULs */
static size_t allowed_size = 0;

EXPORT(proxy_abi_version_0_2_1) void proxy_abi_version_0_2_1(void) {}

EXPORT(proxy_on_memory_allocate) void *proxy_on_memory_allocate(size_t size) { return malloc(size); }

EXPORT(proxy_on_context_create) void proxy_on_context_create(uint32_t id, uint32_t parent) {}

EXPORT(proxy_on_configure) uint32_t proxy_on_configure(uint32_t id, size_t size) {
  char *data = NULL;
  size_t n = 0;
  if (proxy_get_buffer_bytes(PLUGIN_CONFIGURATION, 0, (uint32_t)size, &data, &n) != 0 || n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if (data[i] == ',') data[i] = '\0';
  allowed = data;
  allowed_size = n;
  static const char msg[] = "model-allowlist configured";
  proxy_log(LOG_INFO, msg, sizeof msg - 1);
  return 1;
}

static int is_allowed(const char *model, size_t size) {
  for (size_t at = 0; at < allowed_size;) {
    size_t len = strnlen(allowed + at, allowed_size - at);
    if (len == size && memcmp(allowed + at, model, size) == 0) return 1;
    at += len + 1;
  }
  return 0;
}

EXPORT(proxy_on_request_body) uint32_t proxy_on_request_body(uint32_t id, size_t size, uint32_t end_of_stream) {
  char *model = NULL;
  size_t n = 0;
  if (proxy_get_property("model", 5, &model, &n) != 0) return CONTINUE;
  int ok = is_allowed(model, n);
  free(model);
  if (ok) return CONTINUE;
  static const char body[] = "{\"error\":{\"message\":\"model not allowed\",\"type\":\"permission_error\"}}";
  proxy_send_local_response(403, "model_not_allowed", 17, body, sizeof body - 1, NULL, 0, -1);
  return PAUSE;
}

EXPORT(proxy_on_done) uint32_t proxy_on_done(uint32_t id) { return 1; }
EXPORT(proxy_on_delete) void proxy_on_delete(uint32_t id) {}
