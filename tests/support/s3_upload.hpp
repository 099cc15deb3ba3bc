#pragma once
// Sends a presigned request the way a browser does: the URL's path and query, the
// headers its signature covers, and the body (the HTTP client sets the length).

#include <string>
#include <utility>
#include <vector>

#include "support/http_client.hpp"

namespace ingest::test {

inline http_result send_presigned(const std::string& method, const std::string& url,
                                  std::vector<std::pair<std::string, std::string>> headers, int port,
                                  std::string body = {}) {
  const auto path_start = url.find('/', url.find("://") + 3);
  headers.emplace_back("host", "127.0.0.1:" + std::to_string(port));
  std::erase_if(headers, [](const auto& h) { return h.first == "content-length"; });
  http_client client(static_cast<std::uint16_t>(port));
  return client.call(boost::beast::http::string_to_verb(method), url.substr(path_start), std::move(headers),
                     std::move(body));
}

}  // namespace ingest::test
