#include "federation/routes_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "store/crc32c.hpp"

namespace flotilla::federation {

namespace {

constexpr std::string_view magic = "flotilla-federation-routes 1";
constexpr size_t max_file_size = 16u << 20;

bool plain(unsigned char c) {
  return c > ' ' && c <= '~' && c != '%';
}

void put_field(std::string& out, std::string_view x) {
  out += ' ';
  if (x.empty()) {
    out += '~';
    return;
  }
  static constexpr char hex[] = "0123456789ABCDEF";
  for (unsigned char c : x) {
    if (plain(c) && c != '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

bool unescape(std::string_view in, std::string& out) {
  out.clear();
  if (in == "~")
    return true;
  for (size_t i = 0; i < in.size(); ++i) {
    auto c = static_cast<unsigned char>(in[i]);
    if (c == '%') {
      if (i + 2 >= in.size())
        return false;
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0)
        return false;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (plain(c) && c != '~') {
      out += static_cast<char>(c);
    } else {
      return false;
    }
  }
  return true;
}

std::vector<std::string_view> split_line(std::string_view line) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos <= line.size()) {
    auto sp = line.find(' ', pos);
    if (sp == std::string_view::npos)
      sp = line.size();
    out.push_back(line.substr(pos, sp - pos));
    pos = sp + 1;
  }
  return out;
}

bool to_number(std::string_view s, uint64_t max, uint64_t& out) {
  if (s.empty() || s.size() > 10)
    return false;
  out = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return false;
    out = out * 10 + static_cast<uint64_t>(c - '0');
  }
  return out <= max;
}

std::string crc_hex(uint32_t crc) {
  char buf[9];
  std::snprintf(buf, sizeof(buf), "%08x", crc);
  return buf;
}

} // namespace

bool operator==(const link_config& a, const link_config& b) {
  return a.name == b.name && a.host == b.host && a.port == b.port
         && a.user == b.user && a.password == b.password
         && a.durable == b.durable;
}

bool operator==(const bridge_config& a, const bridge_config& b) {
  return a.name == b.name && a.link == b.link && a.vhost == b.vhost
         && a.exchange == b.exchange && a.key == b.key && a.dynamic == b.dynamic
         && a.queue == b.queue && a.credit == b.credit
         && a.max_hops == b.max_hops && a.durable == b.durable;
}

std::string encode_routes(const durable_routes& r) {
  std::string out{magic};
  out += '\n';
  for (auto& l : r.links) {
    out += "link";
    put_field(out, l.name);
    put_field(out, l.host);
    put_field(out, std::to_string(l.port));
    put_field(out, l.user);
    put_field(out, l.password);
    out += '\n';
  }
  for (auto& b : r.bridges) {
    out += "bridge";
    put_field(out, b.name);
    put_field(out, b.link);
    put_field(out, b.vhost);
    put_field(out, b.exchange);
    put_field(out, b.key);
    put_field(out, b.queue);
    put_field(out, b.dynamic ? "1" : "0");
    put_field(out, std::to_string(b.credit));
    put_field(out, std::to_string(b.max_hops));
    put_field(out, b.src_local ? "1" : "0");
    out += '\n';
  }
  auto crc = store::crc32c(out.data(), out.size());
  out += "end " + std::to_string(r.links.size() + r.bridges.size()) + " "
         + crc_hex(crc) + "\n";
  return out;
}

bool decode_routes(std::string_view bytes, durable_routes& out,
                   std::string& error) {
  out = durable_routes{};
  if (bytes.size() > max_file_size) {
    error = "larger than 16 MiB";
    return false;
  }
  size_t pos = 0;
  size_t line_no = 0;
  bool ended = false;
  std::string field;
  auto fail = [&](const std::string& why) {
    error = "line " + std::to_string(line_no) + ": " + why;
    out = durable_routes{};
    return false;
  };
  while (pos < bytes.size()) {
    auto nl = bytes.find('\n', pos);
    if (nl == std::string_view::npos)
      return fail("truncated (no end of line)");
    auto line = bytes.substr(pos, nl - pos);
    auto line_start = pos;
    pos = nl + 1;
    ++line_no;
    if (ended)
      return fail("data after the end line");
    if (line_no == 1) {
      if (line != magic)
        return fail("not a routes file (expected '" + std::string{magic}
                    + "')");
      continue;
    }
    auto f = split_line(line);
    if (f[0] == "end") {
      uint64_t count = 0;
      if (f.size() != 3 || !to_number(f[1], 0xffffffff, count))
        return fail("bad end line");
      if (count != out.links.size() + out.bridges.size())
        return fail("record count mismatch (truncated?)");
      auto crc = store::crc32c(bytes.data(), line_start);
      if (f[2] != crc_hex(crc))
        return fail("checksum mismatch");
      ended = true;
      continue;
    }
    std::vector<std::string> v;
    for (size_t i = 1; i < f.size(); ++i) {
      if (!unescape(f[i], field))
        return fail("bad field " + std::to_string(i));
      v.push_back(field);
    }
    uint64_t n = 0;
    if (f[0] == "link") {
      if (v.size() != 5)
        return fail("a link has 5 fields");
      link_config l;
      l.name = v[0];
      l.host = v[1];
      if (!to_number(v[2], 65535, n) || n == 0)
        return fail("bad port");
      l.port = static_cast<uint16_t>(n);
      l.user = v[3];
      l.password = v[4];
      l.durable = true;
      if (l.name.empty() || l.host.empty())
        return fail("a link needs a name and a host");
      out.links.push_back(std::move(l));
    } else if (f[0] == "bridge") {
      if (v.size() != 10)
        return fail("a bridge has 10 fields");
      bridge_config b;
      b.name = v[0];
      b.link = v[1];
      b.vhost = v[2];
      b.exchange = v[3];
      b.key = v[4];
      b.queue = v[5];
      if (v[6] != "0" && v[6] != "1")
        return fail("bad dynamic flag");
      b.dynamic = v[6] == "1";
      if (!to_number(v[7], 0xffffffff, n))
        return fail("bad credit");
      b.credit = static_cast<uint32_t>(n);
      if (!to_number(v[8], 0xffffffff, n))
        return fail("bad hop limit");
      b.max_hops = static_cast<uint32_t>(n);
      if (v[9] != "0" && v[9] != "1")
        return fail("bad src-local flag");
      b.src_local = v[9] == "1";
      b.durable = true;
      if (b.name.empty() || b.link.empty() || b.exchange.empty())
        return fail("a bridge needs a name, a link and an exchange");
      out.bridges.push_back(std::move(b));
    } else {
      return fail("unknown record '" + std::string{f[0].substr(0, 20)} + "'");
    }
  }
  if (line_no == 0) {
    error = "empty file";
    return false;
  }
  if (!ended)
    return fail("truncated (no end line)");
  return true;
}

bool load_routes_file(const std::string& path, durable_routes& out,
                      std::string& error) {
  out = durable_routes{};
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      return true;
    error = path + ": " + std::strerror(errno);
    return false;
  }
  std::string bytes;
  char buf[65536];
  for (;;) {
    auto n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      error = path + ": " + std::strerror(errno);
      ::close(fd);
      return false;
    }
    if (n == 0)
      break;
    bytes.append(buf, static_cast<size_t>(n));
    if (bytes.size() > max_file_size)
      break;
  }
  ::close(fd);
  std::string why;
  if (!decode_routes(bytes, out, why)) {
    error = path + " is corrupt: " + why;
    return false;
  }
  return true;
}

bool save_routes_file(const std::string& path, const durable_routes& r,
                      std::string& error) {
  auto bytes = encode_routes(r);
  auto tmp = path + ".tmp";
  auto fail = [&](const std::string& what) {
    error = what + ": " + std::strerror(errno);
    return false;
  };
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return fail(tmp);
  size_t done = 0;
  while (done < bytes.size()) {
    auto n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      auto e = fail(tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return e;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    auto e = fail(tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return e;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto e = fail(path);
    ::unlink(tmp.c_str());
    return e;
  }
  auto slash = path.rfind('/');
  auto dir = slash == std::string::npos
               ? std::string{"."}
               : path.substr(0, slash == 0 ? 1 : slash);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return fail(dir);
  bool ok = ::fsync(dfd) == 0;
  ::close(dfd);
  if (!ok)
    return fail(dir);
  return true;
}

} // namespace flotilla::federation
