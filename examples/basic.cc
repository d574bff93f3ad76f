// The smallest s3db program: connect to an in-memory store, define a resource, write a record
// and read it back. Only the public header <s3db/s3db.h> is used.
//
// Exit code 0 when every step worked; otherwise the failing step's error is printed.
#include <cstdio>
#include <string>
#include <utility>

#include "s3db/s3db.h"

namespace {

int Fail(const char* step, const s3db::Error& error) {
  std::fprintf(stderr, "basic: %s failed: %s\n", step, error.ToString().c_str());
  return 1;
}

}  // namespace

int main() {
  // memory:// keeps everything in this process; use file://./data or an S3 URL to persist.
  auto database = s3db::Database::Connect("memory://demo");
  if (!database) return Fail("connect", database.error());

  s3db::ResourceDefinition users;
  users.name = "users";
  users.attributes = {
      {"name", "string|required|maxlength:100"},
      {"email", "email|required"},
      {"age", "number|min:0"},
  };
  users.timestamps = true;
  auto resource = (*database)->CreateResource(std::move(users));
  if (!resource) return Fail("create resource", resource.error());

  s3db::JsonObject ada = {
      {"id", "ada"}, {"name", "Ada Lovelace"}, {"email", "ada@example.com"}, {"age", 36}};
  auto inserted = (*resource)->Insert(std::move(ada));
  if (!inserted) return Fail("insert", inserted.error());

  auto fetched = (*resource)->Get("ada");
  if (!fetched) return Fail("get", fetched.error());
  std::printf("%s\n", s3db::ToJson(*fetched).c_str());

  // Schema violations come back as errors, not exceptions.
  auto invalid = (*resource)->Insert({{"name", "No Email"}});
  if (invalid) {
    std::fprintf(stderr, "basic: a record without the required email was accepted\n");
    return 1;
  }
  std::printf("rejected as expected: %s\n", invalid.error().ToString().c_str());
  return 0;
}
