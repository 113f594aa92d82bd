#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

/// Users, password hashes and the SASL responses that carry credentials.
/// Plain C++ on OpenSSL's libcrypto; no CAF, never throws. The users file
/// format is described in config/README.md.
namespace flotilla::config {

/// One account of the broker.
struct user {
  std::string name;
  /// "pbkdf2-sha256$ITERATIONS$SALT$HASH" (SALT and HASH in base64), as made
  /// by hash_password().
  std::string password_hash;
  /// Free-form tags; "administrator" grants management rights.
  std::vector<std::string> tags;
  /// Virtual hosts this user may open. Empty, or containing "*", means all.
  std::vector<std::string> vhosts;

  /// Returns true if `tags` contains "administrator".
  bool is_administrator() const;

  /// Returns true if this user may open `vhost`.
  bool may_access(std::string_view vhost) const;
};

/// The set of users the broker authenticates against. Built once at startup
/// (load() or with_default_guest()) and immutable afterwards, so its const
/// members may be called from any thread at once.
class user_db {
public:
  user_db();

  /// Returns a database with the single user guest (password guest), tagged
  /// administrator, allowed on all vhosts. Used when no --users-file is
  /// given; as in RabbitMQ, this guest may only connect from loopback.
  static user_db with_default_guest();

  /// Loads the users file at `path`. Returns nothing and sets `error` (which
  /// names the file and line, e.g. "users:3: ...") if the file cannot be
  /// read, a line is malformed, a user appears twice or there is no user.
  static std::optional<user_db> load(const std::string& path,
                                     std::string& error);

  /// Like load(), from the file's text; `file_name` prefixes errors.
  static std::optional<user_db>
  parse(std::string_view text, std::string_view file_name, std::string& error);

  /// Returns the user called `name`, or nullptr. The pointer stays valid for
  /// the lifetime of this database.
  const user* find(std::string_view name) const;

  /// Returns true if `password` matches `u.password_hash`. Compares in
  /// constant time; false for a malformed hash. A password once verified
  /// with PBKDF2 is remembered (as an HMAC under a random key of this
  /// process, one per user): checking it again costs microseconds instead
  /// of the PBKDF2's milliseconds, so a storm of reconnecting clients does
  /// not hold the broker's threads. A wrong password always costs the full
  /// PBKDF2.
  bool check_password(const user& u, std::string_view password) const;

  /// Returns the user if `name` exists and `password` is right, else nullptr.
  /// An unknown name costs as much time as a wrong password, so that timing
  /// does not reveal which names exist.
  const user* authenticate(std::string_view name,
                           std::string_view password) const;

  /// Returns true if `name` may connect only from a loopback address: the
  /// built-in guest of with_default_guest(). A guest defined in a users file
  /// is an ordinary user.
  bool loopback_only(std::string_view name) const;

  /// Returns all users in file order.
  const std::vector<user>& users() const {
    return users_;
  }

private:
  struct verified; // Passwords verified once (users.cpp).
  std::vector<user> users_;
  bool builtin_guest_ = false;
  std::shared_ptr<verified> verified_;
};

/// Returns a fresh hash of `password` for the users file:
/// "pbkdf2-sha256$10000$SALT$HASH" with a random 16-byte salt (RAND_bytes).
/// Returns an empty string if the random generator fails.
std::string hash_password(std::string_view password);

/// Parses a SASL PLAIN response, "authzid NUL authcid NUL password" (RFC
/// 4616). There is no proxy authorization: the authzid must be empty or
/// equal to the authcid; `user` receives the authcid. Returns false unless
/// there are exactly two NULs, a non-empty authcid and such an authzid. `user`
/// and `pass` are set only on success.
bool parse_sasl_plain(std::string_view response, std::string& user,
                      std::string& pass);

/// Parses an AMQPLAIN response: the entries of an AMQP field table, without
/// the table's leading 4-byte length, holding LOGIN and PASSWORD as long
/// strings (type 'S'). Each entry is a short string key, a type octet and a
/// value. Returns false on truncation, on any type other than 'S', on a
/// repeated LOGIN or PASSWORD, or if either is missing or LOGIN is empty.
/// Other 'S' entries are ignored. `user` and `pass` are set only on success.
bool parse_amqplain(std::string_view response, std::string& user,
                    std::string& pass);

/// Returns `in` in base64 (RFC 4648, standard alphabet, with padding).
std::string base64_encode(std::string_view in);

/// Decodes strict base64 (length a multiple of 4, padding only at the end,
/// no whitespace) into `out`; returns false on anything else.
bool base64_decode(std::string_view in, std::string& out);

/// Splits `s` at `sep`, keeping empty parts (callers decide about them).
std::vector<std::string_view> split(std::string_view s, char sep);

} // namespace flotilla::config
