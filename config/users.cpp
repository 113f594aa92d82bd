#include "config/users.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <unordered_map>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

namespace flotilla::config {

namespace {

// -- base64 (RFC 4648, standard alphabet, with padding) ---------------------

constexpr char b64_alphabet[]
  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

} // namespace

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  auto byte = [&](size_t k) {
    return static_cast<uint8_t>(in[k]);
  };
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += b64_alphabet[(v >> 18) & 63];
    out += b64_alphabet[(v >> 12) & 63];
    out += b64_alphabet[(v >> 6) & 63];
    out += b64_alphabet[v & 63];
  }
  if (in.size() - i == 1) {
    uint32_t v = byte(i) << 16;
    out += b64_alphabet[(v >> 18) & 63];
    out += b64_alphabet[(v >> 12) & 63];
    out += "==";
  } else if (in.size() - i == 2) {
    uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8);
    out += b64_alphabet[(v >> 18) & 63];
    out += b64_alphabet[(v >> 12) & 63];
    out += b64_alphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

namespace {

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

} // namespace

// Strict: length a multiple of 4, padding only at the end, no whitespace.
bool base64_decode(std::string_view in, std::string& out) {
  if (in.size() % 4 != 0)
    return false;
  out.clear();
  for (size_t i = 0; i < in.size(); i += 4) {
    bool last = i + 4 == in.size();
    int pad = 0;
    if (last && in[i + 3] == '=')
      pad = in[i + 2] == '=' ? 2 : 1;
    uint32_t v = 0;
    for (size_t k = 0; k < 4; ++k) {
      int x = 0;
      if (k >= 4 - static_cast<size_t>(pad)) {
        x = 0;
      } else if ((x = b64_value(in[i + k])) < 0) {
        return false;
      }
      v = (v << 6) | static_cast<uint32_t>(x);
    }
    out += static_cast<char>((v >> 16) & 0xff);
    if (pad < 2)
      out += static_cast<char>((v >> 8) & 0xff);
    if (pad < 1)
      out += static_cast<char>(v & 0xff);
  }
  return true;
}

namespace {

constexpr std::string_view scheme = "pbkdf2-sha256";
constexpr unsigned default_iterations = 10000;
// Upper bound on a stored iteration count: each login costs this much.
constexpr unsigned max_iterations = 10'000'000;
constexpr size_t salt_size = 16;
constexpr size_t digest_size = 32; // SHA-256

// -- hashes -------------------------------------------------------------------

struct parsed_hash {
  unsigned iterations = 0;
  std::string salt;
  std::string digest;
};

bool parse_hash(std::string_view text, parsed_hash& out) {
  auto parts = split(text, '$');
  if (parts.size() != 4 || parts[0] != scheme)
    return false;
  auto it = parts[1];
  unsigned n = 0;
  auto [ptr, ec] = std::from_chars(it.data(), it.data() + it.size(), n);
  if (it.empty() || ec != std::errc{} || ptr != it.data() + it.size() || n < 1
      || n > max_iterations)
    return false;
  out.iterations = n;
  return base64_decode(parts[2], out.salt) && !out.salt.empty()
         && out.salt.size() <= 64 && base64_decode(parts[3], out.digest)
         && out.digest.size() == digest_size;
}

bool pbkdf2(std::string_view password, std::string_view salt,
            unsigned iterations, unsigned char (&out)[digest_size]) {
  return PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                           reinterpret_cast<const unsigned char*>(salt.data()),
                           static_cast<int>(salt.size()),
                           static_cast<int>(iterations), EVP_sha256(),
                           static_cast<int>(digest_size), out)
         == 1;
}

std::string make_hash(std::string_view password, std::string_view salt,
                      unsigned iterations) {
  unsigned char digest[digest_size];
  if (!pbkdf2(password, salt, iterations, digest))
    return {};
  std::string r(scheme);
  r += '$';
  r += std::to_string(iterations);
  r += '$';
  r += base64_encode(salt);
  r += '$';
  r += base64_encode(
    std::string_view(reinterpret_cast<const char*>(digest), digest_size));
  return r;
}

// -- users file -------------------------------------------------------------

bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_blank(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back()))
    s.remove_suffix(1);
  return s;
}

// Splits a comma list, trimming items and dropping empty ones.
std::vector<std::string> list(std::string_view s) {
  std::vector<std::string> r;
  for (auto item : split(s, ','))
    if (auto t = trim(item); !t.empty())
      r.emplace_back(t);
  return r;
}

bool valid_user_name(std::string_view name) {
  return !name.empty() && name.size() <= 255
         && std::none_of(name.begin(), name.end(), [](char c) {
              return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f;
            });
}

// Reads one RFC 4616 field: up to the next NUL or the end.
bool take_until_nul(std::string_view& in, std::string_view& field) {
  auto pos = in.find('\0');
  if (pos == std::string_view::npos)
    return false;
  field = in.substr(0, pos);
  in.remove_prefix(pos + 1);
  return true;
}

} // namespace

// -- user -------------------------------------------------------------------

bool user::is_administrator() const {
  return std::find(tags.begin(), tags.end(), "administrator") != tags.end();
}

bool user::may_access(std::string_view vhost) const {
  return vhosts.empty()
         || std::any_of(vhosts.begin(), vhosts.end(), [&](auto& v) {
              return v == "*" || v == vhost;
            });
}

// -- user_db ----------------------------------------------------------------

user_db user_db::with_default_guest() {
  user_db db;
  db.users_.push_back(
    user{"guest", hash_password("guest"), {"administrator"}, {}});
  db.builtin_guest_ = true;
  return db;
}

std::optional<user_db> user_db::load(const std::string& path,
                                     std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open users file '" + path + "': " + std::strerror(errno);
    return std::nullopt;
  }
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (in.bad()) {
    error = "cannot read users file '" + path + "'";
    return std::nullopt;
  }
  return parse(text, path, error);
}

std::optional<user_db> user_db::parse(std::string_view text,
                                      std::string_view file_name,
                                      std::string& error) {
  user_db db;
  std::vector<int> lines; // Line of each user, for duplicate errors.
  int line_no = 0;
  auto fail = [&](const std::string& msg) {
    error = std::string(file_name) + ":" + std::to_string(line_no) + ": " + msg;
    return std::nullopt;
  };
  if (text.substr(0, 3) == "\xEF\xBB\xBF") // UTF-8 byte order mark
    text.remove_prefix(3);
  while (!text.empty()) {
    ++line_no;
    auto nl = text.find('\n');
    auto line = trim(text.substr(0, nl));
    text
      = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line.empty() || line.front() == '#')
      continue;
    auto fields = split(line, ':');
    if (fields.size() < 2 || fields.size() > 4)
      return fail("expected 'name:password_hash[:tags[:vhosts]]'");
    user u;
    u.name = std::string(trim(fields[0]));
    if (!valid_user_name(u.name))
      return fail("invalid user name '" + u.name
                  + "': expected 1-255 bytes without spaces");
    u.password_hash = std::string(trim(fields[1]));
    parsed_hash ph;
    if (!parse_hash(u.password_hash, ph))
      return fail("invalid password hash for user '" + u.name
                  + "': expected pbkdf2-sha256$ITERATIONS$SALT$HASH "
                    "(see 'flotilla passwd')");
    if (fields.size() > 2)
      u.tags = list(fields[2]);
    if (fields.size() > 3)
      u.vhosts = list(fields[3]);
    for (size_t i = 0; i < db.users_.size(); ++i)
      if (db.users_[i].name == u.name)
        return fail("duplicate user '" + u.name + "' (first on line "
                    + std::to_string(lines[i]) + ")");
    db.users_.push_back(std::move(u));
    lines.push_back(line_no);
  }
  if (db.users_.empty()) {
    error = std::string(file_name) + ": no users defined";
    return std::nullopt;
  }
  return db;
}

const user* user_db::find(std::string_view name) const {
  for (auto& u : users_)
    if (u.name == name)
      return &u;
  return nullptr;
}

/// Per stored hash (a user's, with its salt), an HMAC of the password last
/// verified against it, under a random key of this process: a plain hash
/// in memory would let anyone who reads the process's memory test guesses
/// at SHA-256 speed without the key.
struct user_db::verified {
  std::mutex mtx;
  unsigned char key[32] = {};
  bool have_key = false;
  std::unordered_map<std::string, std::array<unsigned char, digest_size>> macs;
};

user_db::user_db() : verified_(std::make_shared<verified>()) {
  verified_->have_key = RAND_bytes(verified_->key, sizeof(verified_->key)) == 1;
}

bool user_db::check_password(const user& u, std::string_view password) const {
  std::array<unsigned char, digest_size> mac{};
  unsigned mac_len = 0;
  bool have_mac
    = verified_->have_key
      && HMAC(EVP_sha256(), verified_->key,
              static_cast<int>(sizeof(verified_->key)),
              reinterpret_cast<const unsigned char*>(password.data()),
              password.size(), mac.data(), &mac_len)
           != nullptr
      && mac_len == digest_size;
  if (have_mac) {
    std::lock_guard<std::mutex> guard{verified_->mtx};
    auto i = verified_->macs.find(u.password_hash);
    if (i != verified_->macs.end()
        && CRYPTO_memcmp(i->second.data(), mac.data(), digest_size) == 0)
      return true;
  }
  parsed_hash ph;
  if (!parse_hash(u.password_hash, ph))
    return false;
  unsigned char digest[digest_size];
  if (!pbkdf2(password, ph.salt, ph.iterations, digest))
    return false;
  if (CRYPTO_memcmp(digest, ph.digest.data(), digest_size) != 0)
    return false;
  if (have_mac) {
    std::lock_guard<std::mutex> guard{verified_->mtx};
    verified_->macs[u.password_hash] = mac;
  }
  return true;
}

const user* user_db::authenticate(std::string_view name,
                                  std::string_view password) const {
  if (auto u = find(name))
    return check_password(*u, password) ? u : nullptr;
  // Spend the time of a real check against a dummy salt.
  unsigned char digest[digest_size];
  pbkdf2(password, "flotilla-no-such-user", default_iterations, digest);
  return nullptr;
}

bool user_db::loopback_only(std::string_view name) const {
  return builtin_guest_ && name == "guest";
}

std::string hash_password(std::string_view password) {
  unsigned char salt[salt_size];
  if (RAND_bytes(salt, sizeof(salt)) != 1)
    return {};
  return make_hash(
    password,
    std::string_view(reinterpret_cast<const char*>(salt), sizeof(salt)),
    default_iterations);
}

// -- SASL -------------------------------------------------------------------

bool parse_sasl_plain(std::string_view response, std::string& user,
                      std::string& pass) {
  std::string_view authzid;
  std::string_view authcid;
  if (!take_until_nul(response, authzid) || !take_until_nul(response, authcid))
    return false;
  // What is left is the password: it must not hold a third NUL.
  if (authcid.empty() || response.find('\0') != std::string_view::npos)
    return false;
  // No proxy authorization: a client may not ask to act as another user.
  if (!authzid.empty() && authzid != authcid)
    return false;
  user = std::string(authcid);
  pass = std::string(response);
  return true;
}

bool parse_amqplain(std::string_view response, std::string& user,
                    std::string& pass) {
  std::optional<std::string_view> login;
  std::optional<std::string_view> password;
  auto in = response;
  while (!in.empty()) {
    // Key: a short string (length octet, then bytes).
    size_t key_len = static_cast<uint8_t>(in[0]);
    if (in.size() < 1 + key_len + 1)
      return false;
    auto key = in.substr(1, key_len);
    char type = in[1 + key_len];
    in.remove_prefix(1 + key_len + 1);
    if (type != 'S')
      return false;
    // Value: a long string (32-bit big-endian length, then bytes), checked
    // against what is left before anything is copied.
    if (in.size() < 4)
      return false;
    uint32_t len = (uint32_t{static_cast<uint8_t>(in[0])} << 24)
                   | (uint32_t{static_cast<uint8_t>(in[1])} << 16)
                   | (uint32_t{static_cast<uint8_t>(in[2])} << 8)
                   | uint32_t{static_cast<uint8_t>(in[3])};
    in.remove_prefix(4);
    if (in.size() < len)
      return false;
    auto value = in.substr(0, len);
    in.remove_prefix(len);
    if (key == "LOGIN") {
      if (login)
        return false;
      login = value;
    } else if (key == "PASSWORD") {
      if (password)
        return false;
      password = value;
    }
  }
  if (!login || login->empty() || !password)
    return false;
  user = std::string(*login);
  pass = std::string(*password);
  return true;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> r;
  for (;;) {
    auto pos = s.find(sep);
    r.push_back(s.substr(0, pos));
    if (pos == std::string_view::npos)
      return r;
    s.remove_prefix(pos + 1);
  }
}

} // namespace flotilla::config
