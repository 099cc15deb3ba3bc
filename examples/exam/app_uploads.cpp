// Attachments over HTTP: a presigned upload URL for a student (POST
// /v1/exams/{id}/uploads) and a short-lived download URL for a teacher (GET
// /v1/exams/{id}/attachments?key=). Both are signed here; no call reaches the storage.

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "app.hpp"
#include "json_text.hpp"

namespace exam {

using ingest::http::status;

namespace {

boost::json::object headers_json(const ingest::aws::presigned_request& p) {
  boost::json::object h;
  // The browser sets Content-Length itself (and may not set it by hand).
  for (const auto& [name, value] : p.headers)
    if (name != "content-length") h[name] = value;
  return h;
}

}  // namespace

void app::post_upload(const std::string& exam_id, request req, responder& respond) {
  auto who = authenticate(req, respond);
  if (!who) return;
  if (rate_limited(*who, req, respond)) return;
  const exam_info* e = exams_.find(exam_id);
  if (!e) return fail(req, respond, status::not_found, "exam_not_found", "no such exam");
  if (who->role != role::student) return fail(req, respond, status::forbidden, "forbidden", "only students upload files");
  // The id goes into the object key as it is.
  if (!valid_id(who->sub) || who->sub == "." || who->sub == "..")
    return fail(req, respond, status::forbidden, "forbidden", "uploads need a student id of 1-64 of [A-Za-z0-9._-]");
  if (!e->allows(who->sub))
    return fail(req, respond, status::forbidden, "forbidden", "this exam is not open to " + who->sub);
  const auto now = ingest::clock::now();
  if (!e->open_at(now))
    return fail(req, respond, status::forbidden, "exam_not_open", "the exam opens at " + ingest::format_time(e->opens_at));
  if (e->late(now))
    return fail(req, respond, status::forbidden, "deadline_passed",
                "the deadline plus grace was " + ingest::format_time(e->deadline + e->grace));
  if (!e->attachments.allowed())
    return fail(req, respond, status::forbidden, "attachments_not_allowed", "this exam takes no attachments");
  if (!options_.storage)
    return fail(req, respond, status::forbidden, "attachments_not_allowed", "this server has no storage for uploads");
  if (!json_body(req))
    return fail(req, respond, status::unsupported_media_type, "unsupported_media_type",
                "Content-Type must be application/json");
  upload_request u;
  if (auto why = parse_upload_request(req.body(), u); !why.empty())
    return fail(req, respond, status::bad_request, "invalid_body", why);
  if (u.size > e->attachments.max_bytes)
    return fail(req, respond, status::payload_too_large, "attachment_too_large",
                "files of this exam are at most " + std::to_string(e->attachments.max_bytes) + " bytes");
  if (!e->attachments.takes_type(u.content_type))
    return fail(req, respond, status::unsupported_media_type, "attachment_type_not_allowed",
                "this exam takes " + [&] {
                  std::string list;
                  for (const auto& t : e->attachments.content_types) list += (list.empty() ? "" : ", ") + t;
                  return list;
                }());
  if (draining_)
    return fail(req, respond, status::service_unavailable, "shutting_down", "the server is shutting down",
                std::chrono::seconds(5));

  const auto key = upload_keys_.issue(exam_id, who->sub, u.size, u.sha256);
  const auto signed_put = options_.storage->presign_put(key, u.content_type, u.size, u.sha256, options_.upload_expiry);
  boost::json::object attachment_ref;
  attachment_ref["key"] = key;
  attachment_ref["sha256"] = u.sha256;
  attachment_ref["size"] = u.size;
  attachment_ref["filename"] = u.filename;
  boost::json::array types;
  for (const auto& t : e->attachments.content_types) types.emplace_back(t);
  boost::json::object o;
  o["object_key"] = key;
  o["upload_url"] = signed_put.url;
  o["method"] = "PUT";
  o["headers"] = headers_json(signed_put);
  o["expires_at"] = ingest::format_time(now + options_.upload_expiry);
  o["attachment"] = std::move(attachment_ref);  // what the submission names
  o["max_files"] = e->attachments.max_files;
  o["max_bytes"] = e->attachments.max_bytes;
  o["content_types"] = std::move(types);
  respond(ingest::http::json_response(req, status::created, to_plain_json(o)));
}

void app::get_attachment(const std::string& exam_id, request req, responder& respond) {
  auto who = authenticate(req, respond);
  if (!who) return;
  if (!exams_.find(exam_id)) return fail(req, respond, status::not_found, "exam_not_found", "no such exam");
  if (who->role != role::teacher)
    return fail(req, respond, status::forbidden, "forbidden", "only teachers download attachments");
  const auto query = query_of(req);
  const auto key = query.find("key");
  if (key == query.end() || !key->second.starts_with(upload_keys::exam_prefix(exam_id)) || key->second.size() > 512)
    return fail(req, respond, status::bad_request, "invalid_query", "key must be an attachment key of this exam");
  if (!options_.storage)
    return fail(req, respond, status::not_found, "not_found", "this server has no storage for attachments");
  const auto name = query.find("filename");
  const auto url = options_.storage->presign_get(key->second, options_.download_expiry,
                                                 name == query.end() ? std::string_view{} : name->second);
  boost::json::object o;
  o["url"] = url.url;
  o["expires_at"] = ingest::format_time(ingest::clock::now() + options_.download_expiry);
  respond(ingest::http::json_response(req, status::ok, to_plain_json(o)));
}

}  // namespace exam
