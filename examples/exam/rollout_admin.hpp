#pragma once
// The rollout's control on the direct server (--admin-token), for operators:
//   GET /v1/admin/rollout                      -> {"queue_percent":25.00,"routed_direct":..,...}
//   PUT /v1/admin/rollout {"queue_percent":N}  -> the same, after the change
// with `Authorization: Bearer <admin token>`. Moving the percentage back to 0 sends
// every new submission to the direct path at once; retries keep their first path.

#include <string>

#include "ingest/http/server.hpp"
#include "ingest/rollout.hpp"

namespace exam {

// Answers `req` when it is for /v1/admin/rollout and returns true; false for any other
// path (left to the application). Without `admin_token`, the route does not exist.
bool handle_rollout_admin(const ingest::http::request& req, ingest::rollout& rollout, const std::string& admin_token,
                          ingest::http::responder& respond);

}  // namespace exam
