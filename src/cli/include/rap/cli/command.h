// The generic command layer of rapctl: most commands are one CommandSpec (HTTP method, route,
// parameters, what to print), executed by run_spec(). Special commands (login, logout, whoami,
// setup) are written by hand in rapctl.cpp on top of the same helpers.
//
// Exit codes (ExitCode): 0 ok, 1 the API refused (4xx) or not logged in, 2 usage error
// (bad flags, bad URL, unreadable --ca-file, no password), 3 connection/TLS error, 4 server
// error (5xx).
// Every failure prints exactly one `error: <message> (<code>)` line on stderr, sometimes
// followed by a `hint: ...` line.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "rap/cli/config.h"
#include "rap/cli/http_client.h"
#include "rap/cli/table.h"
#include "rap/common/result.h"

namespace rap::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitApiError = 1,
  kExitUsage = 2,
  kExitConnection = 3,
  kExitServerError = 4,
};

// The process's standard streams (tests substitute string streams).
struct Io {
  std::istream& in;
  std::ostream& out;
  std::ostream& err;
};

// Options shared by all commands (given anywhere on the command line).
struct Globals {
  std::string server;       // --server: overrides the configured server
  std::string ca_file;      // --ca-file
  bool insecure = false;    // --insecure
  bool json = false;        // --json: print the server's JSON unchanged
  double timeout_s = 30.0;  // --timeout seconds per network operation
  std::string config_path;  // resolved path of the config file
};

// Exit code for a non-API error code (transport, usage, local).
int exit_code_for(const Error& e);
// Prints `error: <message> (<code>)` and returns exit_code_for(e).
int report(Io& io, const Error& e);
// Prints the API error of an HTTP reply (status >= 400) plus a hint for errors rapctl can help
// with (expired session, step-up required); returns 1 for 4xx and 4 for 5xx.
int report_http(Io& io, const HttpReply& r);

// Connection settings for a command. With `need_token`, a stored (or $RAPCTL_TOKEN) token is
// required, otherwise the error tells the user to log in. A stored token (and stored CA
// settings) are only used for the server they were issued by: `--server` naming another server
// never receives it. Prints the --insecure warning on stderr when verification is off.
Result<ClientOptions> client_options(Io& io, const Globals& g, const Config& cfg, bool need_token);

// A password or other secret: one line from stdin when `from_stdin`, otherwise a prompt on
// /dev/tty with echo off (asked twice when `confirm`). No terminal → usage error.
Result<std::string> read_secret(Io& io, bool from_stdin, const std::string& prompt, bool confirm);

// ---- Generic commands ----------------------------------------------------------------------

enum class Where : std::uint8_t {
  kPath,   // fills {key} in the route (percent-encoded)
  kBody,   // member of the JSON request body
  kQuery,  // query string parameter
};

enum class Kind : std::uint8_t {
  kString,
  kInt,        // JSON number in a body
  kBool,       // true|false, JSON boolean in a body
  kList,       // repeatable / comma separated, JSON array of strings in a body
  kMap,        // repeatable KEY=VALUE, JSON object of strings in a body
  kJson,       // a JSON document given as text
  kSecret,     // flag `--password-stdin`-style: value read by read_secret()
  kNewSecret,  // like kSecret, but a prompt asks twice
};

struct Param {
  std::string flag;  // "--email" (option) or "SLUG" (positional argument)
  std::string key;   // JSON member / route placeholder / query parameter
  Where where = Where::kBody;
  Kind kind = Kind::kString;
  bool required = false;
  std::string help;
  std::vector<std::string> choices;  // allowed values, if restricted
  std::string default_value;         // sent when the option is not given ("" = not sent)
  // kList only: turns the given values into the body member (default: array of strings).
  std::function<Result<json>(const std::vector<std::string>&)> convert;
};

struct CommandSpec {
  std::vector<std::string> words;  // {"orgs", "members", "add"}
  std::string help;
  std::string method;  // "GET", "POST", "DELETE", ...
  std::string route;   // "/api/v1/orgs/{slug}/members"
  std::vector<Param> params;
  bool auth = true;  // sends the bearer token (and requires being logged in)
  // Member of the response to print: an array becomes a table of `columns`, an object a
  // key/value block. "" prints the whole response as a key/value block.
  std::string result;
  std::vector<Column> columns;
  // Optional human rendering instead of the default (not used with --json).
  std::function<void(const json& body, Io& io)> render;
  // Optional exit code derived from a successful response (e.g. audit verify → 1 if broken).
  std::function<int(const json& body)> outcome;
  // Printed on stderr after a successful response that carries a secret shown only once.
  std::string secret_notice;
};

// Values given on the command line for one spec, keyed by Param::key.
struct ParamValues {
  std::map<std::string, std::string> strings;
  std::map<std::string, std::vector<std::string>> lists;
  std::map<std::string, bool> secret_from_stdin;
  std::map<std::string, bool> given;
};

// Builds the request of `spec` from `values`: the path with query string, and the body
// (nullopt when the spec has no body parameters). Usage errors for missing/invalid values.
Result<std::pair<std::string, std::optional<json>>> build_request(const CommandSpec& spec,
                                                                  const ParamValues& values,
                                                                  Io& io);

// Performs `spec` with the given values and prints the result; returns the exit code.
int run_spec(const CommandSpec& spec, const ParamValues& values, const Globals& g, Io& io);

// Prints a successful response the way `spec` asks for (or as JSON with g.json).
void print_result(const CommandSpec& spec, const json& body, const Globals& g, Io& io);

}  // namespace rap::cli
