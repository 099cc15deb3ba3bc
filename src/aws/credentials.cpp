// Where AWS credentials and the region come from when the options do not give them:
// the environment, then the shared credentials and config files of the AWS tools.

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

#include "ingest/error.hpp"
#include "ingest/aws/credentials.hpp"

namespace ingest::aws {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

// The `key = value` lines of section `section` of an INI file; empty when the file or
// the section is missing. `found` tells the two apart.
std::map<std::string, std::string> ini_section(const std::string& path, const std::string& section, bool& found) {
  std::map<std::string, std::string> out;
  found = false;
  std::ifstream in(path);
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      inside = trim(line.substr(1, line.size() - 2)) == section;
      found = found || inside;
      continue;
    }
    const auto eq = line.find('=');
    if (inside && eq != std::string::npos) out[trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
  }
  return out;
}

std::string home_file(const char* variable, const char* relative) {
  if (auto set = env(variable); !set.empty()) return set;
  const auto home = env("HOME");
  return home.empty() ? std::string() : home + "/" + relative;
}

std::string profile_name() {
  const auto p = env("AWS_PROFILE");
  return p.empty() ? "default" : p;
}

}  // namespace

credentials credentials::from_environment() {
  return {env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"), env("AWS_SESSION_TOKEN")};
}

credentials credentials::from_shared_file(const std::string& path, const std::string& profile) {
  bool found = false;
  auto s = ini_section(path, profile, found);
  return {s["aws_access_key_id"], s["aws_secret_access_key"], s["aws_session_token"]};
}

credentials credentials::from_default_chain() {
  auto c = from_environment();
  if (!c.access_key_id.empty() && !c.secret_access_key.empty()) return c;
  const auto path = home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
  const auto profile = profile_name();
  bool found = false;
  if (!path.empty()) ini_section(path, profile, found);
  if (!found && !env("AWS_PROFILE").empty())
    throw error(errc::invalid_config, "aws: AWS_PROFILE names profile '" + profile + "', which " +
                                          (path.empty() ? std::string("no credentials file") : path) + " does not have");
  return found ? from_shared_file(path, profile) : credentials{};
}

std::string region_from_shared_config() {
  const auto path = home_file("AWS_CONFIG_FILE", ".aws/config");
  if (path.empty()) return {};
  const auto profile = profile_name();
  bool found = false;
  auto s = ini_section(path, profile == "default" ? "default" : "profile " + profile, found);
  return s["region"];
}

std::string default_region() {
  for (const char* name : {"AWS_REGION", "AWS_DEFAULT_REGION"})
    if (const char* v = std::getenv(name); v && *v) return v;
  if (auto r = region_from_shared_config(); !r.empty()) return r;
  return "us-east-1";
}

credentials resolve_credentials(credentials given, bool tls, std::string_view who) {
  if (given.access_key_id.empty()) given = credentials::from_default_chain();
  if (!given.access_key_id.empty() && !given.secret_access_key.empty()) return given;
  if (tls)
    throw error(errc::invalid_config,
                std::string(who) +
                    ": no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with "
                    "~/.aws/credentials; instance roles, web identity and SSO are not read: export them)");
  return credentials{"test", "test", {}};
}

}  // namespace ingest::aws
