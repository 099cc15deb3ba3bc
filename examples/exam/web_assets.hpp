#pragma once
// The pages both exam servers serve (examples/exam/web), compiled into the binary so
// that the servers need no files beside them.

#include <string_view>
#include <vector>

#include "ingest/http/server.hpp"

namespace exam::web {

struct asset {
  std::string_view path;  // URL path, "/student.js"
  std::string_view type;  // Content-Type
  std::string_view etag;  // strong ETag of the bytes, quoted
  std::string_view bytes;
};

// Every file of examples/exam/web (generated at build time).
const std::vector<asset>& assets();

// What is served at `path` ("/" is the student page, "/teacher" the teacher's), or
// null.
const asset* find(std::string_view path);

// The asset (304 when If-None-Match names its ETag), with the headers every page gets:
// a strict Content-Security-Policy (no inline script or style, nothing from elsewhere),
// no referrer, no sniffing, no framing, revalidated on every load.
// `connect_also`: one more origin the page may connect to (the attachments' storage).
ingest::http::response answer(const ingest::http::request& req, const asset& a, std::string_view connect_also = {});

}  // namespace exam::web
