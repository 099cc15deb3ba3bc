#pragma once
/// @file
/// AWS credentials, and where they and the region come from when the options do not
/// give them: the environment, then the shared files of the AWS tools.

#include <string>
#include <string_view>

namespace ingest::aws {

/// AWS credentials. Plain value type; never logged by the library.
struct credentials {
  std::string access_key_id{};  ///< the key id (`AKIA...`)
  std::string secret_access_key{};  ///< the secret; only used to derive signing keys
  std::string session_token{};  ///< temporary credentials (STS); empty otherwise

  /// From `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`;
  /// empty fields for unset variables.
  static credentials from_environment();

  /// From profile `profile` of an AWS shared credentials file (INI: `[name]` sections
  /// with `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`). Empty
  /// fields when the file or the profile is not there.
  static credentials from_shared_file(const std::string& path, const std::string& profile);

  /// What the AWS tools look at first, in their order: the environment variables; else
  /// the profile `AWS_PROFILE` (default `default`) of the shared credentials file
  /// (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`). Throws
  /// `ingest::error(errc::invalid_config)` when `AWS_PROFILE` names a profile the file
  /// does not have. Not read: EC2/ECS instance roles, web identity (STS) and SSO: on
  /// such hosts export the credentials into the environment (for example with
  /// `aws configure export-credentials --format env`). Empty fields when none is found.
  static credentials from_default_chain();
};

/// The region of profile `AWS_PROFILE` (default `default`) in the AWS shared config
/// file (`AWS_CONFIG_FILE`, default `~/.aws/config`: `[default]` or `[profile name]`
/// sections with `region = ...`), or "" when there is none.
std::string region_from_shared_config();

/// `AWS_REGION`, else `AWS_DEFAULT_REGION`, else `region_from_shared_config()`, else
/// `us-east-1`.
std::string default_region();

/// `given` when it has a key id; else `credentials::from_default_chain()`. When that
/// finds none either: over TLS (a real service) throws `ingest::error(errc::invalid_config)`
/// naming `who`; over plain HTTP (an emulator, which takes any pair) gives `test`/`test`.
credentials resolve_credentials(credentials given, bool tls, std::string_view who);

}  // namespace ingest::aws
