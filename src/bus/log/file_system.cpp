#include "bus/log/file_system.hpp"

namespace ferry::bus {

Result<std::string> ReadWholeFile(FileSystem& fs, const std::string& path) {
  auto file = fs.OpenReadable(path);
  if (!file) return tl::unexpected(file.error());
  auto size = (*file)->Size();
  if (!size) return tl::unexpected(size.error());
  std::string data(*size, '\0');
  auto n = (*file)->Read(0, data.size(), data.data());
  if (!n) return tl::unexpected(n.error());
  data.resize(*n);
  return data;
}

std::string JoinPath(std::string_view dir, std::string_view name) {
  std::string path(dir);
  if (!path.empty() && path.back() != '/') path.push_back('/');
  path.append(name);
  return path;
}

}  // namespace ferry::bus
