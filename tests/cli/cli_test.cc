// The s3db binary, run as a user would: in a temporary folder, with arguments, standard input
// and environment, checking exit codes, standard output and standard error.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.h"
#include "formats/formats_test_util.h"
#include "s3db/json.h"
#include "test_util.h"

namespace s3db {
namespace {

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream input(text);
  std::string line;
  while (std::getline(input, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// A child process running the CLI in `folder`, with pipes for its three standard streams.
class CliProcess {
 public:
  CliProcess(const std::string& folder, const std::vector<std::string>& args,
             const std::map<std::string, std::string>& env = {}) {
    int in[2], out[2], err[2];
    EXPECT_EQ(::pipe2(in, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(err, O_CLOEXEC), 0);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      if (::chdir(folder.c_str()) != 0) ::_exit(126);
      ::unsetenv("S3DB_CONNECTION");
      ::unsetenv("S3DB_CONFIG");
      for (const auto& [name, value] : env) ::setenv(name.c_str(), value.c_str(), 1);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(S3DB_CLI_PATH));
      for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
      argv.push_back(nullptr);
      ::execv(S3DB_CLI_PATH, argv.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    stdin_ = in[1];
    stdout_ = out[0];
    stderr_ = err[0];
  }

  ~CliProcess() {
    if (pid_ > 0 && !waited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    for (int fd : {stdin_, stdout_, stderr_}) {
      if (fd >= 0) ::close(fd);
    }
  }

  void WriteInputAndClose(const std::string& text) {
    std::size_t done = 0;
    while (done < text.size()) {
      ssize_t n = ::write(stdin_, text.data() + done, text.size() - done);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    ::close(stdin_);
    stdin_ = -1;
  }

  // Reads standard output until it holds a full line or `timeout` passes.
  std::string ReadLine(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out_.find('\n') == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return "";
      pollfd poll_fd{stdout_, POLLIN, 0};
      if (::poll(&poll_fd, 1, static_cast<int>(left.count())) <= 0) continue;
      char buffer[4096];
      ssize_t n = ::read(stdout_, buffer, sizeof buffer);
      if (n <= 0) return "";
      out_.append(buffer, static_cast<std::size_t>(n));
    }
    std::size_t end = out_.find('\n');
    std::string line = out_.substr(0, end);
    out_.erase(0, end + 1);
    return line;
  }

  void Signal(int number) { ::kill(pid_, number); }

  // Reads both outputs to their end and waits for the exit code.
  CliResult Finish(std::chrono::seconds timeout = std::chrono::seconds(60)) {
    if (stdin_ >= 0) {
      ::close(stdin_);
      stdin_ = -1;
    }
    CliResult result;
    result.out = out_;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    bool out_open = true, err_open = true;
    while ((out_open || err_open) && std::chrono::steady_clock::now() < deadline) {
      pollfd fds[2] = {{stdout_, POLLIN, 0}, {stderr_, POLLIN, 0}};
      if (::poll(fds, 2, 200) <= 0) continue;
      char buffer[8192];
      for (int i = 0; i < 2; ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP))) continue;
        ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
        if (n <= 0) {
          (i == 0 ? out_open : err_open) = false;
          continue;
        }
        (i == 0 ? result.out : result.err).append(buffer, static_cast<std::size_t>(n));
      }
    }
    if (out_open || err_open) {
      ::kill(pid_, SIGKILL);
      ADD_FAILURE() << "the CLI did not finish in time";
    }
    int status = 0;
    ::waitpid(pid_, &status, 0);
    waited_ = true;
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return result;
  }

 private:
  pid_t pid_ = -1;
  bool waited_ = false;
  int stdin_ = -1, stdout_ = -1, stderr_ = -1;
  std::string out_;
};

class CliTest : public ::testing::Test {
 protected:
  CliResult Run(const std::vector<std::string>& args, const std::string& input = "",
                const std::map<std::string, std::string>& env = {}) {
    CliProcess process(dir_.str(), args, env);
    process.WriteInputAndClose(input);
    return process.Finish();
  }

  void WriteFile(const std::string& name, const std::string& text) {
    std::ofstream file(dir_.path() / name, std::ios::binary);
    file << text;
  }

  JsonObject ParseObject(const std::string& text) {
    auto object = ParseJsonObject(text);
    EXPECT_TRUE(object.has_value()) << text;
    return object ? *object : JsonObject();
  }

  testing::TempDir dir_;
};

std::string Describe(const CliResult& result) {
  return "exit " + std::to_string(result.exit_code) + "\nstdout: " + result.out +
         "\nstderr: " + result.err;
}

// The URL that `s3db run` prints when it listens ("" and a test failure when it does not).
std::string ListeningUrl(CliProcess& service) {
  std::string line = service.ReadLine(std::chrono::seconds(30));
  const std::string prefix = "s3db run: listening on ";
  if (line.rfind(prefix, 0) != 0) {
    ADD_FAILURE() << "s3db run did not start: " << line << "\n" << Describe(service.Finish());
    return "";
  }
  return line.substr(prefix.size());
}

TEST_F(CliTest, HelpListsTheCommands) {
  CliResult result = Run({"--help"});
  EXPECT_EQ(result.exit_code, 0) << Describe(result);
  for (const char* command : {"resource", "insert", "get", "update", "delete", "list", "query",
                              "import", "export", "run", "replicators", "dlq", "--connection",
                              "--config"}) {
    EXPECT_NE(result.out.find(command), std::string::npos) << command;
  }
  result = Run({"import", "--help"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_NE(result.out.find("--upsert"), std::string::npos);
}

TEST_F(CliTest, UnknownCommandFailsWithUsage) {
  CliResult result = Run({"frobnicate"});
  EXPECT_EQ(result.exit_code, 2) << Describe(result);
  EXPECT_EQ(result.err.rfind("s3db: unknown command 'frobnicate'; commands: resource, insert,", 0),
            0u)
      << result.err;
  CliResult nested = Run({"replicators", "frobnicate"});
  EXPECT_EQ(nested.exit_code, 2) << Describe(nested);
  EXPECT_NE(nested.err.find("s3db: replicators: unknown command 'frobnicate'; commands: list, "
                            "stats, enable, disable, sync, tail"),
            std::string::npos)
      << nested.err;
  CliResult none = Run({});
  EXPECT_EQ(none.exit_code, 2) << Describe(none);
  EXPECT_NE(none.err.find("a command is required; commands: resource"), std::string::npos);
  // Every other usage error is 2 as well (CLI11's own codes are 100 and up); help is 0.
  CliResult bad_option = Run({"list", "users", "--bogus"});
  EXPECT_EQ(bad_option.exit_code, 2) << Describe(bad_option);
  EXPECT_EQ(Run({"dlq", "--help"}).exit_code, 0);
}

TEST_F(CliTest, ResourceCreateAndList) {
  CliResult created = Run({"resource", "create", "users", "--attributes",
                           R"({"name":"string|required","age":"number"})", "--timestamps"});
  ASSERT_EQ(created.exit_code, 0) << Describe(created);
  JsonObject definition = ParseObject(Lines(created.out).at(0));
  EXPECT_EQ(definition.at("name"), Json("users"));
  EXPECT_EQ(definition.at("timestamps"), Json(true));
  ASSERT_EQ(Run({"resource", "create", "tags", "--id-size", "8"}).exit_code, 0);

  CliResult listed = Run({"resource", "list"});
  ASSERT_EQ(listed.exit_code, 0) << Describe(listed);
  std::vector<std::string> lines = Lines(listed.out);
  ASSERT_EQ(lines.size(), 2u) << listed.out;
  EXPECT_NE(listed.out.find("\"name\":\"users\""), std::string::npos);
  EXPECT_NE(listed.out.find("\"idSize\":8"), std::string::npos);

  CliResult bad = Run({"resource", "create", "x", "--attributes", R"({"a":"numbr"})"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("numbr"), std::string::npos) << bad.err;
}

TEST_F(CliTest, RecordRoundTrip) {
  ASSERT_EQ(Run({"resource", "create", "users", "--attributes", R"({"name":"string|required"})"})
                .exit_code,
            0);
  CliResult inserted = Run({"insert", "users", R"({"id":"u1","name":"Ann","n":9007199254740993})"});
  ASSERT_EQ(inserted.exit_code, 0) << Describe(inserted);
  EXPECT_EQ(ParseObject(inserted.out).at("n"), Json(9007199254740993LL));

  CliResult from_stdin = Run({"insert", "users", "-"}, R"({"id":"u2","name":"Bob","age":17})");
  ASSERT_EQ(from_stdin.exit_code, 0) << Describe(from_stdin);

  CliResult got = Run({"get", "users", "u1"});
  ASSERT_EQ(got.exit_code, 0) << Describe(got);
  EXPECT_EQ(ParseObject(got.out).at("name"), Json("Ann"));

  CliResult updated = Run({"update", "users", "u1", R"({"age":30})"});
  ASSERT_EQ(updated.exit_code, 0) << Describe(updated);
  EXPECT_EQ(ParseObject(updated.out).at("age"), Json(30));
  EXPECT_EQ(ParseObject(updated.out).at("_rev"), Json(2));

  CliResult listed = Run({"list", "users"});
  ASSERT_EQ(listed.exit_code, 0);
  EXPECT_EQ(Lines(listed.out).size(), 2u);
  EXPECT_EQ(Lines(Run({"list", "users", "--limit", "1"}).out).size(), 1u);
  std::vector<std::string> offset = Lines(Run({"list", "users", "--offset", "1"}).out);
  ASSERT_EQ(offset.size(), 1u);
  EXPECT_EQ(ParseObject(offset[0]).at("id"), Json("u2"));

  CliResult adults = Run({"query", "users", R"({"age":{"$gte":18}})"});
  ASSERT_EQ(adults.exit_code, 0) << Describe(adults);
  std::vector<std::string> adult_lines = Lines(adults.out);
  ASSERT_EQ(adult_lines.size(), 1u);
  EXPECT_EQ(ParseObject(adult_lines[0]).at("id"), Json("u1"));

  CliResult deleted = Run({"delete", "users", "u1"});
  ASSERT_EQ(deleted.exit_code, 0) << Describe(deleted);
  CliResult missing = Run({"get", "users", "u1"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("not found"), std::string::npos) << missing.err;
  EXPECT_TRUE(missing.out.empty());
}

TEST_F(CliTest, BadJsonAndValidationErrorsFail) {
  ASSERT_EQ(Run({"resource", "create", "users", "--attributes", R"({"name":"string|required"})"})
                .exit_code,
            0);
  CliResult bad = Run({"insert", "users", "{bad"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("invalid JSON"), std::string::npos) << bad.err;
  CliResult trailing = Run({"insert", "users", R"({"name":"a"} extra)"});
  EXPECT_NE(trailing.exit_code, 0);
  CliResult invalid = Run({"insert", "users", R"({"age":3})"});
  EXPECT_NE(invalid.exit_code, 0);
  EXPECT_NE(invalid.err.find("name"), std::string::npos) << invalid.err;
  CliResult unknown = Run({"list", "nosuch"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("nosuch"), std::string::npos);
}

TEST_F(CliTest, ImportsJsonArrayJsonLinesAndCsv) {
  ASSERT_EQ(Run({"resource", "create", "people", "--attributes",
                 R"({"name":"string|required","age":"number","zip":"string"})"})
                .exit_code,
            0);
  std::string array = "[\n";
  for (int i = 0; i < 120; ++i) {
    array += std::string(i ? ",\n" : "") + R"({"id":"a)" + std::to_string(i) + R"(","name":"n)" +
             std::to_string(i) + R"(","age":)" + std::to_string(i) + "}";
  }
  array += "\n]\n";
  WriteFile("people.json", array);
  CliResult json = Run({"import", "people.json", "--resource", "people", "--batch-size", "50"});
  ASSERT_EQ(json.exit_code, 0) << Describe(json);
  EXPECT_NE(json.out.find("imported 120, failed 0"), std::string::npos) << json.out;

  WriteFile("more.jsonl", R"({"id":"j1","name":"J1"})"
                          "\n\n"
                          R"({"id":"j2","name":"J2"})"
                          "\n");
  CliResult jsonl = Run({"import", "more.jsonl", "-r", "people"});
  ASSERT_EQ(jsonl.exit_code, 0) << Describe(jsonl);
  EXPECT_NE(jsonl.out.find("imported 2, failed 0"), std::string::npos);

  WriteFile("rows.csv",
            "id,name,age,zip\r\n"
            "c1,\"Smith, \"\"Jo\"\"\",41,01234\r\n"
            "c2,\"two\nlines\",,99\r\n");
  CliResult csv = Run({"import", "rows.csv", "-r", "people"});
  ASSERT_EQ(csv.exit_code, 0) << Describe(csv);
  EXPECT_NE(csv.out.find("imported 2, failed 0"), std::string::npos) << csv.out;
  JsonObject c1 = ParseObject(Run({"get", "people", "c1"}).out);
  EXPECT_EQ(c1.at("name"), Json("Smith, \"Jo\""));
  EXPECT_EQ(c1.at("age"), Json(41));
  EXPECT_EQ(c1.at("zip"), Json("01234"));
  JsonObject c2 = ParseObject(Run({"get", "people", "c2"}).out);
  EXPECT_EQ(c2.at("name"), Json("two\nlines"));
  EXPECT_FALSE(c2.contains("age"));
  EXPECT_EQ(c2.at("zip"), Json("99"));

  CliResult piped =
      Run({"import", "-", "-r", "people", "--format", "ndjson"}, R"({"id":"s1","name":"S"})"
                                                                 "\n");
  ASSERT_EQ(piped.exit_code, 0) << Describe(piped);
  EXPECT_EQ(Lines(Run({"list", "people"}).out).size(), 125u);

  CliResult again = Run({"import", "more.jsonl", "-r", "people"});
  EXPECT_NE(again.exit_code, 0);  // the ids exist
  EXPECT_NE(again.out.find("imported 0, failed 2"), std::string::npos) << again.out;
  WriteFile("upsert.jsonl", R"({"id":"j1","age":5})"
                            "\n");
  CliResult upsert = Run({"import", "upsert.jsonl", "-r", "people", "--upsert"});
  ASSERT_EQ(upsert.exit_code, 0) << Describe(upsert);
  JsonObject j1 = ParseObject(Run({"get", "people", "j1"}).out);
  EXPECT_EQ(j1.at("age"), Json(5));
  EXPECT_EQ(j1.at("name"), Json("J1"));
}

TEST_F(CliTest, MalformedImportNamesFileAndLine) {
  ASSERT_EQ(Run({"resource", "create", "t"}).exit_code, 0);
  WriteFile("bad.jsonl", R"({"id":"1"})"
                         "\n"
                         R"({"id":)"
                         "\n"
                         R"({"id":"3"})"
                         "\n");
  CliResult jsonl = Run({"import", "bad.jsonl", "-r", "t"});
  EXPECT_NE(jsonl.exit_code, 0);
  EXPECT_NE(jsonl.out.find("imported 2, failed 1"), std::string::npos) << Describe(jsonl);
  EXPECT_NE(jsonl.err.find("bad.jsonl: line 2:"), std::string::npos) << jsonl.err;

  WriteFile("open.csv", "id,text\nk1,ok\nk2,\"never closed\nk3,x\n");
  CliResult csv = Run({"import", "open.csv", "-r", "t"});
  EXPECT_NE(csv.exit_code, 0);
  EXPECT_NE(csv.err.find("open.csv: line 3: the quoted field that starts here is never closed"),
            std::string::npos)
      << csv.err;
  EXPECT_NE(csv.out.find("imported 1"), std::string::npos);

  // A missing ']': every element is imported or counted as failed, then the error.
  WriteFile("open.json", "[\n{\"id\":\"a\"},\n{\"id\":\"b\"}\n");
  CliResult json = Run({"import", "open.json", "-r", "t"});
  EXPECT_NE(json.exit_code, 0);
  EXPECT_NE(json.out.find("imported 2, failed 0"), std::string::npos) << Describe(json);
  EXPECT_EQ(Run({"get", "t", "b"}).exit_code, 0);
  WriteFile("cut.json", "[\n{\"id\":\"c\"},\n{\"id\":\"d\",\n\"x\":[1,");
  CliResult cut = Run({"import", "cut.json", "-r", "t"});
  EXPECT_NE(cut.exit_code, 0);
  EXPECT_NE(cut.out.find("imported 1, failed 1"), std::string::npos) << Describe(cut);
  EXPECT_NE(cut.err.find("cut.json: line 3: the element that starts here is cut off"),
            std::string::npos)
      << cut.err;
  EXPECT_NE(json.err.find("open.json: line"), std::string::npos) << json.err;
  EXPECT_NE(json.err.find("not closed"), std::string::npos) << json.err;

  WriteFile("data.txt", "{}");
  CliResult unknown = Run({"import", "data.txt", "-r", "t"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("--format"), std::string::npos);
}

TEST_F(CliTest, SecretsInConnectionStringsAreNeverPrinted) {
  const std::string secret = "TOPSECRET";
  const std::string connection = "http://KEY:" + secret + "@127.0.0.1:1/bucket";
  std::vector<CliResult> results;
  results.push_back(Run({"--connection", connection, "list", "users"}));
  results.push_back(Run({"list", "users"}, "", {{"S3DB_CONNECTION", connection}}));
  results.push_back(Run({"--connection", connection, "insert", "users", "{}"}));
  results.push_back(Run({"--connection", connection, "nosuchcommand"}));
  WriteFile("c.yaml", "connection: " + connection + "\n");
  results.push_back(Run({"-c", "c.yaml", "resource", "list"}));
  for (const CliResult& result : results) {
    EXPECT_NE(result.exit_code, 0) << Describe(result);
    EXPECT_EQ(result.out.find(secret), std::string::npos) << result.out;
    EXPECT_EQ(result.err.find(secret), std::string::npos) << result.err;
  }
  EXPECT_NE(results[0].err.find("***"), std::string::npos) << results[0].err;
}

TEST_F(CliTest, ConfigErrorsNameFileLineAndPath) {
  WriteFile("bad.yaml", "connection: file://./d\nresources:\n  users:\n    atributes: {}\n");
  CliResult result = Run({"-c", "bad.yaml", "resource", "list"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("bad.yaml:4:5: resources.users.atributes: unknown key"),
            std::string::npos)
      << result.err;

  WriteFile("syntax.yaml", "connection: [file\n");
  result = Run({"-c", "syntax.yaml", "resource", "list"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("syntax.yaml:"), std::string::npos) << result.err;

  WriteFile("driver.yaml",
            "connection: file://./d\nreplicator:\n  replicators:\n    - driver: nope\n"
            "      resources: [users]\n");
  result = Run({"-c", "driver.yaml", "replicators", "list"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("driver.yaml:4:7: replicator.replicators[0].driver"), std::string::npos)
      << result.err;

  result = Run({"-c", "missing.yaml", "resource", "list"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("missing.yaml"), std::string::npos);
}

const char* kReplicatedConfig = R"(connection: file://./data
resources:
  users: { attributes: { name: "string|required", age: number } }
replicator:
  replicators:
    - driver: s3db
      id: backup
      resources:
        users:
          resource: people
          actions: [insert, update]
          transform: |
            function(data)
              if data.name == "boom" then error("cannot take " .. data.id) end
              data.full = data.name .. "!"
              data.hash = md5(data.name)
              return data
            end
          shouldReplicate: |
            function(data, action) return data.age == nil or data.age >= 18 end
      config: { connectionString: file://./backup }
http: { listen: "127.0.0.1:0" }
)";

TEST_F(CliTest, ImportWithConfigReplicatesThroughLua) {
  WriteFile("c.yaml", kReplicatedConfig);
  WriteFile("u.jsonl", R"({"id":"a","name":"Ann","age":30})"
                       "\n"
                       R"({"id":"b","name":"Kid","age":9})"
                       "\n"
                       R"({"id":"c","name":"Cy"})"
                       "\n");
  CliResult imported = Run({"-c", "c.yaml", "import", "u.jsonl", "-r", "users"});
  ASSERT_EQ(imported.exit_code, 0) << Describe(imported);
  EXPECT_NE(imported.out.find("imported 3, failed 0"), std::string::npos) << imported.out;
  EXPECT_NE(imported.out.find("replicator backup (s3db): delivered 2, filtered 1, failed "
                              "attempts 0 (retried 0), dead letters 0,"),
            std::string::npos)
      << imported.out;

  // Without a running `s3db run`, stats read what the change log keeps and say that the
  // delivery counters are unknown instead of showing zeros.
  CliResult stats = Run({"-c", "c.yaml", "replicators", "stats", "backup"});
  ASSERT_EQ(stats.exit_code, 0) << Describe(stats);
  JsonObject standalone = ParseObject(stats.out);
  EXPECT_EQ(standalone.at("live"), Json(false)) << stats.out;
  EXPECT_TRUE(standalone.at("delivered").is_null()) << stats.out;
  EXPECT_TRUE(standalone.at("failed").is_null()) << stats.out;
  EXPECT_EQ(standalone.at("checkpoint"), Json(3u)) << stats.out;  // the 3 imported changes
  EXPECT_EQ(standalone.at("head"), Json(3u)) << stats.out;
  EXPECT_EQ(standalone.at("lagChanges"), Json(0u)) << stats.out;
  EXPECT_NE(stats.err.find("Live counters need a running `s3db run -c c.yaml`"),
            std::string::npos)
      << stats.err;

  CliResult copied = Run({"--connection", "file://./backup", "list", "people"});
  ASSERT_EQ(copied.exit_code, 0) << Describe(copied);
  std::vector<std::string> lines = Lines(copied.out);
  ASSERT_EQ(lines.size(), 2u) << copied.out;
  JsonObject first = ParseObject(lines[0]);
  EXPECT_EQ(first.at("id"), Json("a"));
  EXPECT_EQ(first.at("full"), Json("Ann!"));
  EXPECT_EQ(first.at("hash"), Json("82e335f7ac0e0e412b2ae15abe662110"));  // md5("Ann")

  CliResult listed = Run({"-c", "c.yaml", "replicators", "list"});
  ASSERT_EQ(listed.exit_code, 0) << Describe(listed);
  EXPECT_NE(listed.out.find("\"id\":\"backup\""), std::string::npos);
}

TEST_F(CliTest, FailingTransformGoesToTheDeadLetterQueue) {
  WriteFile("c.yaml", kReplicatedConfig);
  CliResult inserted = Run({"-c", "c.yaml", "insert", "users", R"({"id":"x","name":"boom"})"});
  ASSERT_EQ(inserted.exit_code, 0) << Describe(inserted);

  CliResult letters = Run({"-c", "c.yaml", "dlq", "list", "backup"});
  ASSERT_EQ(letters.exit_code, 0) << Describe(letters);
  ASSERT_EQ(Lines(letters.out).size(), 1u) << letters.out;
  EXPECT_NE(letters.out.find("Transform function failed for resource 'users'"), std::string::npos)
      << letters.out;
  EXPECT_NE(letters.out.find("cannot take x"), std::string::npos);

  CliResult purged = Run({"-c", "c.yaml", "dlq", "purge", "backup"});
  ASSERT_EQ(purged.exit_code, 0) << Describe(purged);
  EXPECT_NE(purged.out.find("\"purged\":1"), std::string::npos) << purged.out;
  EXPECT_TRUE(Lines(Run({"-c", "c.yaml", "dlq", "list", "backup"}).out).empty());

  CliResult unknown = Run({"-c", "c.yaml", "dlq", "list", "nosuch"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("Replicator not found: nosuch"), std::string::npos) << unknown.err;
}

TEST_F(CliTest, SyncBackfillsAndReplaySendsDeadLettersAgain) {
  WriteFile("c.yaml", kReplicatedConfig);
  // The config declares the resource; records written without it are seen by no replicator.
  ASSERT_EQ(Run({"-c", "c.yaml", "resource", "list"}).exit_code, 0);
  for (const char* record :
       {R"({"id":"a","name":"Ann","age":30})", R"({"id":"k","name":"Kid","age":9})"}) {
    CliResult inserted = Run({"--connection", "file://./data", "insert", "users", record});
    ASSERT_EQ(inserted.exit_code, 0) << Describe(inserted);
  }
  EXPECT_NE(Run({"--connection", "file://./backup", "get", "people", "a"}).exit_code, 0);

  CliResult synced = Run({"-c", "c.yaml", "replicators", "sync", "backup"});
  ASSERT_EQ(synced.exit_code, 0) << Describe(synced);
  CliResult copied = Run({"--connection", "file://./backup", "get", "people", "a"});
  ASSERT_EQ(copied.exit_code, 0) << Describe(copied);
  EXPECT_EQ(ParseObject(copied.out).at("full"), Json("Ann!"));  // through the Lua transform
  // shouldReplicate holds the minor back.
  EXPECT_NE(Run({"--connection", "file://./backup", "get", "people", "k"}).exit_code, 0);

  // A change whose transform throws is dead-lettered; a replay sends it through the pipeline
  // again, where it fails the same way and is dead-lettered once more.
  ASSERT_EQ(Run({"-c", "c.yaml", "insert", "users", R"({"id":"x","name":"boom"})"}).exit_code, 0);
  ASSERT_EQ(Lines(Run({"-c", "c.yaml", "dlq", "list", "backup"}).out).size(), 1u);
  CliResult replayed = Run({"-c", "c.yaml", "dlq", "replay", "backup"});
  ASSERT_EQ(replayed.exit_code, 0) << Describe(replayed);
  EXPECT_NE(replayed.out.find("\"replayed\":1"), std::string::npos) << replayed.out;
  CliResult again = Run({"-c", "c.yaml", "dlq", "list", "backup"});
  ASSERT_EQ(Lines(again.out).size(), 1u) << again.out;
  EXPECT_NE(again.out.find("cannot take x"), std::string::npos) << again.out;

  CliResult unknown = Run({"-c", "c.yaml", "replicators", "sync", "nosuch"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("Replicator not found: nosuch"), std::string::npos) << unknown.err;
}

TEST_F(CliTest, DisablingAReplicatorIsRemembered) {
  WriteFile("c.yaml", kReplicatedConfig);
  CliResult disabled = Run({"-c", "c.yaml", "replicators", "disable", "backup"});
  ASSERT_EQ(disabled.exit_code, 0) << Describe(disabled);
  CliResult stats = Run({"-c", "c.yaml", "replicators", "stats", "backup"});
  ASSERT_EQ(stats.exit_code, 0) << Describe(stats);
  EXPECT_EQ(ParseObject(stats.out).at("state"), Json("disabled"));
  ASSERT_EQ(Run({"-c", "c.yaml", "replicators", "enable", "backup"}).exit_code, 0);
  stats = Run({"-c", "c.yaml", "replicators", "stats", "backup"});
  EXPECT_EQ(ParseObject(stats.out).at("state"), Json("running")) << stats.out;
}

// The spec's Multi-Format Export example: replicators without "resources" take every
// resource, also one created after the config's, but never the replicator log.
TEST_F(CliTest, ReplicatorsWithoutResourcesExportEveryResource) {
  WriteFile("export.yaml", R"(connection: file://./data
resources:
  users: { attributes: { name: string } }
replicator:
  persistReplicatorLog: true
  replicators:
    - { driver: jsonl, config: { outputPath: ./exports } }
    - { driver: csv, config: { outputPath: ./exports } }
)");
  ASSERT_EQ(Run({"-c", "export.yaml", "resource", "create", "orders"}).exit_code, 0);
  WriteFile("u.jsonl", R"({"id":"u1","name":"Ann"})"
                       "\n");
  CliResult users = Run({"-c", "export.yaml", "import", "u.jsonl", "-r", "users"});
  ASSERT_EQ(users.exit_code, 0) << Describe(users);
  EXPECT_NE(users.out.find("replicator jsonl-0 (jsonl): delivered 1,"), std::string::npos)
      << users.out;
  EXPECT_NE(users.out.find("replicator csv-1 (csv): delivered 1,"), std::string::npos)
      << users.out;
  CliResult orders = Run({"-c", "export.yaml", "insert", "orders", R"({"id":"o1","total":3})"});
  ASSERT_EQ(orders.exit_code, 0) << Describe(orders);

  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.str() + "/exports")) {
    files.push_back(entry.path().filename().string());
  }
  std::sort(files.begin(), files.end());
  ASSERT_EQ(files.size(), 4u) << ::testing::PrintToString(files);
  EXPECT_EQ(files[0].rfind("orders_", 0), 0u);
  EXPECT_EQ(files[2].rfind("users_", 0), 0u);
  for (const auto& file : files) {
    EXPECT_EQ(file.find("replicator_log"), std::string::npos) << file;
  }
  CliResult listed = Run({"-c", "export.yaml", "replicators", "list"});
  ASSERT_EQ(listed.exit_code, 0) << Describe(listed);
  EXPECT_NE(listed.out.find(R"("resources":["orders","users"])"), std::string::npos)
      << listed.out;
}

TEST_F(CliTest, AMappedResourceThatDoesNotExistIsAWarning) {
  WriteFile("typo.yaml", R"(connection: file://./data
resources:
  users: { attributes: { name: string } }
replicator:
  replicators:
    - { driver: jsonl, resources: [userz], config: { outputPath: ./exports } }
)");
  CliResult listed = Run({"-c", "typo.yaml", "replicators", "list"});
  ASSERT_EQ(listed.exit_code, 0) << Describe(listed);
  EXPECT_NE(listed.err.find("warning [replicator] replicator jsonl-0: source resource 'userz' "
                            "does not exist (yet)"),
            std::string::npos)
      << listed.err;
}

TEST_F(CliTest, ImportOfAMissingFileSaysWhy) {
  CliResult missing = Run({"import", "nofile.json", "-r", "users"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("s3db: cannot read 'nofile.json': No such file or directory"),
            std::string::npos)
      << missing.err;
  ASSERT_EQ(::mkdir((dir_.str() + "/folder.json").c_str(), 0755), 0);
  CliResult folder = Run({"import", "folder.json", "-r", "users"});
  EXPECT_NE(folder.exit_code, 0);
  EXPECT_NE(folder.err.find("cannot read 'folder.json': Is a directory"), std::string::npos)
      << folder.err;
}

TEST_F(CliTest, ReplicatorConfigErrorsPointAtTheirYamlLine) {
  // A driver option the driver does not know: its full path and line.
  WriteFile("pg.yaml", R"(connection: file://./data
resources:
  users: { attributes: { name: string } }
replicator:
  replicators:
    - driver: postgresql
      resources: [users]
      config:
        connectionString: host=127.0.0.1
        tabel: people
)");
  CliResult pg = Run({"-c", "pg.yaml", "replicators", "list"});
  EXPECT_NE(pg.exit_code, 0);
  EXPECT_NE(pg.err.find("pg.yaml:10:9: replicator.replicators[0].config.tabel: cannot start the "
                        "replicator: unknown option;"),
            std::string::npos)
      << pg.err;
  EXPECT_NE(pg.err.find("(replicator postgresql-0, driver postgresql)"), std::string::npos)
      << pg.err;

  // A required driver option that is missing: the line of the replicator's config.
  WriteFile("csv.yaml", R"(connection: file://./data
resources:
  users: { attributes: { name: string } }
replicator:
  replicators:
    - driver: csv
      resources: [users]
      config:
        delimiter: ";"
)");
  CliResult csv = Run({"-c", "csv.yaml", "replicators", "list"});
  EXPECT_NE(csv.exit_code, 0);
  EXPECT_NE(csv.err.find("csv.yaml:8:7: replicator.replicators[0].config.output: cannot start "
                         "the replicator: required: "),
            std::string::npos)
      << csv.err;

  // A misspelt file driver option: its line, the known keys and the closest one.
  WriteFile("csv2.yaml", R"(connection: file://./data
resources:
  users: { attributes: { name: string } }
replicator:
  replicators:
    - driver: csv
      resources: [users]
      config:
        outputPat: ./out
)");
  CliResult csv2 = Run({"-c", "csv2.yaml", "replicators", "list"});
  EXPECT_NE(csv2.exit_code, 0);
  EXPECT_NE(csv2.err.find("csv2.yaml:9:9: replicator.replicators[0].config.outputPat: cannot "
                          "start the replicator: unknown option (known: output, outputPath, "),
            std::string::npos)
      << csv2.err;
  EXPECT_NE(csv2.err.find("(did you mean 'outputPath'?)"), std::string::npos) << csv2.err;

  // Webhook and format (CSV) option errors point at the option, not at `config:`.
  WriteFile("bad.yaml", R"(connection: file://./data
resources:
  users: { attributes: { name: string } }
replicator:
  replicators:
    - driver: webhook
      resources: [users]
      config: { url: "http://127.0.0.1:1/x",
                method: GET }
)");
  CliResult hook = Run({"-c", "bad.yaml", "replicators", "list"});
  EXPECT_NE(hook.exit_code, 0);
  EXPECT_NE(hook.err.find("bad.yaml:9:17: replicator.replicators[0].config.method: cannot start "
                          "the replicator: 'GET' is not POST, PUT or PATCH"),
            std::string::npos)
      << hook.err;
  WriteFile("bad.yaml", R"(connection: file://./data
resources:
  users: { attributes: { name: string } }
replicator:
  replicators:
    - driver: csv
      resources: [users]
      config:
        outputPath: ./out
        delimiter: "#"
)");
  CliResult delimiter = Run({"-c", "bad.yaml", "replicators", "list"});
  EXPECT_NE(delimiter.exit_code, 0);
  EXPECT_NE(delimiter.err.find("bad.yaml:10:9: replicator.replicators[0].config.delimiter: "
                               "cannot start the replicator: option `delimiter`"),
            std::string::npos)
      << delimiter.err;

  // A misspelt key of a destination object.
  WriteFile("typo.yaml", R"(connection: file://./data
resources:
  users: { attributes: { name: string } }
replicator:
  replicators:
    - driver: s3db
      resources:
        users:
          resource: people
          tranform: |
            function(data) return data end
      config: { connectionString: file://./backup }
)");
  CliResult typo = Run({"-c", "typo.yaml", "replicators", "list"});
  EXPECT_NE(typo.exit_code, 0);
  EXPECT_NE(typo.err.find("typo.yaml:10:11: replicator.replicators[0].resources.users.tranform: "
                          "unknown key; expected one of resource, transform, actions, "
                          "shouldReplicate (did you mean 'transform'?)"),
            std::string::npos)
      << typo.err;
}

TEST_F(CliTest, ALogResourceNamingADeclaredResourceIsRefused) {
  // A replicator without resources takes every resource but the log's: naming `users` as the
  // log stopped its replication without a word.
  WriteFile("log.yaml", R"(connection: file://./data
resources:
  users: {}
replicator:
  persistReplicatorLog: true
  replicatorLogResource: users
  replicators:
    - driver: jsonl
      config: { outputPath: ./out }
)");
  CliResult refused = Run({"-c", "log.yaml", "insert", "users", R"({"id":"a"})"});
  EXPECT_NE(refused.exit_code, 0) << Describe(refused);
  EXPECT_NE(refused.err.find("log.yaml:6:3: replicator.replicatorLogResource: cannot start the "
                             "replicator: 'users' is a resource that replicators[0] replicates"),
            std::string::npos)
      << refused.err;
}

// Regression: a damaged change log said "change log: SELECT MAX(m) FROM (...): database disk
// image is malformed": no file, no way out, SQL text.
TEST_F(CliTest, DamagedChangeLogIsNamedWithWhatToDo) {
  WriteFile("c.yaml", kReplicatedConfig);
  ASSERT_EQ(Run({"-c", "c.yaml", "insert", "users", R"({"id":"a","name":"Ann"})"}).exit_code, 0);
  std::filesystem::path log = dir_.path() / "data/.s3db-state/replicator/changes.db";
  ASSERT_TRUE(std::filesystem::exists(log));
  auto size = std::filesystem::file_size(log);
  ASSERT_GT(size, 4096u);
  {
    // Keep the header page, wreck the rest: "database disk image is malformed".
    std::fstream file(log, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(4096);
    file << std::string(size - 4096, '\xff');
  }
  std::filesystem::remove(log.string() + "-wal");
  std::filesystem::remove(log.string() + "-shm");
  CliResult damaged = Run({"-c", "c.yaml", "insert", "users", R"({"id":"b","name":"Bo"})"});
  EXPECT_EQ(damaged.exit_code, 1) << Describe(damaged);
  EXPECT_NE(damaged.err.find("the change log " + log.string() + " is damaged ("), std::string::npos)
      << damaged.err;
  EXPECT_NE(damaged.err.find("move it aside"), std::string::npos) << damaged.err;
  EXPECT_NE(damaged.err.find("is lost: changes not yet delivered"), std::string::npos);
  EXPECT_EQ(damaged.err.find("SELECT"), std::string::npos) << damaged.err;

  {
    std::ofstream file(log, std::ios::binary | std::ios::trunc);
    file << std::string(8192, 'x');  // "file is not a database"
  }
  CliResult garbage = Run({"-c", "c.yaml", "replicators", "list"});
  EXPECT_EQ(garbage.exit_code, 1) << Describe(garbage);
  EXPECT_NE(garbage.err.find(log.string() + " is damaged (file is not a database)"),
            std::string::npos)
      << garbage.err;

  // Doing what the message says works.
  std::filesystem::rename(log, log.string() + ".damaged");
  CliResult again = Run({"-c", "c.yaml", "insert", "users", R"({"id":"b","name":"Bo"})"});
  EXPECT_EQ(again.exit_code, 0) << Describe(again);
  EXPECT_EQ(Run({"-c", "c.yaml", "replicators", "sync", "backup"}).exit_code, 0);
}

TEST_F(CliTest, ReplicatorCommandsNeedAReplicatorSection) {
  WriteFile("plain.yaml", "connection: file://./data\n");
  CliResult result = Run({"-c", "plain.yaml", "replicators", "list"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("no 'replicator' section"), std::string::npos) << result.err;
}

Result<net::HttpResponse> HttpGet(net::HttpClient& client, const std::string& url) {
  net::HttpRequest request;
  request.url = url;
  request.timeout = std::chrono::seconds(10);
  return client.Send(request);
}

TEST_F(CliTest, RunServesMetricsHealthAndWritesAndStopsCleanly) {
  std::string config = kReplicatedConfig;
  const std::string section = "replicator:\n  replicators:";
  ASSERT_NE(config.find(section), std::string::npos);
  config.replace(config.find(section), section.size(),
                 "replicator:\n  persistReplicatorLog: true\n  replicators:");
  WriteFile("c.yaml", config);
  CliProcess service(dir_.str(), {"-c", "c.yaml", "run"});
  std::string url = ListeningUrl(service);
  ASSERT_FALSE(url.empty());
  auto http = net::NewHttpClient();

  // Writes through the CLI with the same config go to the running service.
  CliResult inserted = Run({"-c", "c.yaml", "insert", "users", R"({"id":"r1","name":"Run"})"});
  ASSERT_EQ(inserted.exit_code, 0) << Describe(inserted);
  WriteFile("two.jsonl", R"({"id":"r2","name":"Two","age":40})"
                         "\n"
                         R"({"id":"r3","name":"Three","age":3})"
                         "\n");
  CliResult imported = Run({"-c", "c.yaml", "import", "two.jsonl", "-r", "users"});
  ASSERT_EQ(imported.exit_code, 0) << Describe(imported);
  EXPECT_NE(imported.out.find("imported 2, failed 0"), std::string::npos);

  // Delivered by the service's replicator.
  JsonObject stats;
  for (int attempt = 0; attempt < 100; ++attempt) {
    CliResult answer = Run({"-c", "c.yaml", "replicators", "stats", "backup"});
    ASSERT_EQ(answer.exit_code, 0) << Describe(answer);
    stats = ParseObject(answer.out);
    if (stats.at("delivered") == Json(2) && stats.at("filtered") == Json(1)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(stats.at("delivered"), Json(2)) << ToJson(stats);
  EXPECT_EQ(stats.at("filtered"), Json(1)) << ToJson(stats);

  auto health = HttpGet(*http, url + "/health");
  ASSERT_TRUE(health.has_value()) << health.error().message;
  EXPECT_EQ(health->status, 200);
  JsonObject health_body = ParseObject(health->body);
  EXPECT_EQ(health_body.at("status"), Json("ok"));
  EXPECT_EQ(ToJson(health_body.at("replicators").get_array().at(0).get_object().at("state")),
            "\"running\"");

  auto metrics = HttpGet(*http, url + "/metrics");
  ASSERT_TRUE(metrics.has_value());
  EXPECT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->Header("content-type").find("text/plain"), std::string::npos);
  for (const char* expected :
       {"s3db_up 1\n", "# TYPE s3db_replicator_delivered_total counter\n",
        "s3db_replicator_delivered_total{replicator=\"backup\",driver=\"s3db\"} 2\n",
        "s3db_replicator_filtered_total{replicator=\"backup\",driver=\"s3db\"} 1\n",
        "s3db_replicator_dead_letters{replicator=\"backup\",driver=\"s3db\"} 0\n",
        "s3db_replicator_lag_changes{replicator=\"backup\",driver=\"s3db\"} 0\n",
        "s3db_replicator_state{replicator=\"backup\",driver=\"s3db\",state=\"running\"} 1\n"}) {
    EXPECT_NE(metrics->body.find(expected), std::string::npos) << expected << metrics->body;
  }

  // A second service on the same state is refused.
  CliResult second = Run({"-c", "c.yaml", "run", "--listen", "127.0.0.1:0"});
  EXPECT_NE(second.exit_code, 0);
  EXPECT_NE(second.err.find("another s3db process"), std::string::npos) << second.err;

  // tail sees a change made while it follows, with its sequence number in the change log;
  // the replicator log entries the delivery writes (persistReplicatorLog) are not shown.
  CliProcess tail(dir_.str(),
                  {"-c", "c.yaml", "replicators", "tail", "--count", "2", "--timeout", "4"});
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_EQ(Run({"-c", "c.yaml", "update", "users", "r1", R"({"age":50})"}).exit_code, 0);
  CliResult tailed = tail.Finish();
  ASSERT_EQ(tailed.exit_code, 0) << Describe(tailed);
  ASSERT_EQ(Lines(tailed.out).size(), 1u) << tailed.out;
  JsonObject change = ParseObject(Lines(tailed.out)[0]);
  EXPECT_EQ(change.at("changeId"), Json("users:r1:2"));
  EXPECT_EQ(change.at("action"), Json("update"));
  CliResult head = Run({"-c", "c.yaml", "replicators", "stats", "backup"});
  ASSERT_EQ(head.exit_code, 0) << Describe(head);
  EXPECT_EQ(change.at("seq"), ParseObject(head.out).at("head")) << tailed.out << head.out;
  EXPECT_EQ(change.at("seq"), Json(4u)) << tailed.out;  // r1, r2, r3, then this update
  // ... although there are some.
  CliResult logged = Run({"-c", "c.yaml", "list", "replicator_log"});
  ASSERT_EQ(logged.exit_code, 0) << Describe(logged);
  EXPECT_GE(Lines(logged.out).size(), 1u) << logged.out;

  service.Signal(SIGTERM);
  CliResult stopped = service.Finish();
  EXPECT_EQ(stopped.exit_code, 0) << Describe(stopped);
  EXPECT_NE(stopped.out.find("s3db run: stopped"), std::string::npos) << stopped.out;

  CliResult copied = Run({"--connection", "file://./backup", "get", "people", "r1"});
  ASSERT_EQ(copied.exit_code, 0) << Describe(copied);
  EXPECT_EQ(ParseObject(copied.out).at("full"), Json("Run!"));
  EXPECT_EQ(ParseObject(copied.out).at("age"), Json(50));
}

// Regression: through a running service, `insert` printed {"ok":true} per record, `--wait`
// returned at once without a warning, and `import` printed no replicator lines.
TEST_F(CliTest, WritesPrintTheSameWithAndWithoutTheService) {
  WriteFile("c.yaml", kReplicatedConfig);
  WriteFile("one.jsonl", R"({"id":"j1","name":"Jo"})"
                         "\n");
  WriteFile("two.jsonl", R"({"id":"j2","name":"Jay"})"
                         "\n");
  auto check = [&](const std::string& suffix) {
    SCOPED_TRACE(suffix);
    CliResult inserted =
        Run({"-c", "c.yaml", "insert", "users",
             R"([{"id":"a)" + suffix + R"(","name":"A"},{"id":"b)" + suffix + R"("}])"});
    EXPECT_EQ(inserted.exit_code, 1) << Describe(inserted);
    std::vector<std::string> lines = Lines(inserted.out);
    ASSERT_EQ(lines.size(), 2u) << inserted.out;
    JsonObject stored = ParseObject(lines[0]);
    EXPECT_EQ(stored.at("id"), Json("a" + suffix));
    EXPECT_EQ(stored.at("_rev"), Json(1));
    EXPECT_NE(lines[1].find(R"({"error":{"code":"validation")"), std::string::npos) << lines[1];

    CliResult imported =
        Run({"-c", "c.yaml", "import", suffix == "1" ? "one.jsonl" : "two.jsonl", "-r", "users"});
    EXPECT_EQ(imported.exit_code, 0) << Describe(imported);
    EXPECT_NE(imported.out.find("imported 1, failed 0"), std::string::npos) << imported.out;
    EXPECT_NE(imported.out.find("\nreplicator backup (s3db): delivered "), std::string::npos)
        << imported.out;
  };
  check("0");  // no service: this process runs the replicator
  {
    CliProcess service(dir_.str(), {"-c", "c.yaml", "run"});
    ASSERT_FALSE(ListeningUrl(service).empty());
    check("1");
    service.Signal(SIGTERM);
    EXPECT_EQ(service.Finish().exit_code, 0);
  }

  // A target that is down: --wait waits and warns, with or without the service.
  WriteFile("down.yaml", R"(connection: file://./downdata
resources:
  users: {}
replicator:
  retryBaseMs: 10
  maxBackoffMs: 200
  replicators:
    - driver: s3db
      id: down
      resources: [users]
      config: { connectionString: "http://KEY:TOPSECRET@127.0.0.1:1/bucket" }
http: { listen: "127.0.0.1:0" }
)");
  auto waits = [&](const std::string& id, const std::string& who) {
    auto started = std::chrono::steady_clock::now();
    CliResult result =
        Run({"-c", "down.yaml", "--wait", "2", "insert", "users", R"({"id":")" + id + "\"}"});
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    EXPECT_EQ(result.exit_code, 0) << Describe(result);
    EXPECT_EQ(ParseObject(result.out).at("_rev"), Json(1));
    EXPECT_GE(seconds, 1.9) << who;
    EXPECT_NE(result.err.find("s3db: warning: replication did not finish within 2 s"),
              std::string::npos)
        << who << ": " << result.err;
    EXPECT_NE(result.err.find(who), std::string::npos) << result.err;
    EXPECT_EQ(result.err.find("TOPSECRET"), std::string::npos);
  };
  waits("d0", "delivered by the next s3db process");
  CliProcess service(dir_.str(), {"-c", "down.yaml", "run"});
  ASSERT_FALSE(ListeningUrl(service).empty());
  waits("d1", "the running s3db run keeps delivering them");
  service.Signal(SIGTERM);
  service.Finish();
}

// A keep-alive client connected to `url` (http://127.0.0.1:PORT): sends GET /health and
// waits up to `timeout` for the whole answer. Returns false when none came in time.
class KeepAliveClient {
 public:
  explicit KeepAliveClient(const std::string& url) {
    int port = std::stoi(url.substr(url.rfind(':') + 1));
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~KeepAliveClient() { ::close(fd_); }

  bool GetHealth(std::chrono::milliseconds timeout) {
    return Exchange("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n",
                    timeout)
               .rfind("HTTP/1.1 ", 0) == 0;
  }

  // Sends `request` as it is and returns the whole answer (head and body), "" when none came.
  std::string Exchange(const std::string& request, std::chrono::milliseconds timeout) {
    if (!connected_ || ::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) < 0) {
      return "";
    }
    std::string answer;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      std::size_t head_end = answer.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        std::size_t length = answer.find("Content-Length: ");
        if (length != std::string::npos &&
            answer.size() >= head_end + 4 + std::stoul(answer.substr(length + 16))) {
          return answer;
        }
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return "";
      pollfd poll_fd{fd_, POLLIN, 0};
      if (::poll(&poll_fd, 1, static_cast<int>(left.count())) <= 0) return "";
      char buffer[4096];
      ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) return "";
      answer.append(buffer, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

// Regression: the HTTP server had cpp-httplib's default pool (8 threads here), and each idle
// keep-alive connection holds a thread, so the 9th client of a writer fleet waited for the 5 s
// keep-alive timeout of another one (the soak test's p99 jumped to 5,003 ms).
TEST_F(CliTest, TheChangeFeedPositionGoesOnAcrossARestart) {
  // A client resuming GET /changes with the `after` it last saw must get what the next run
  // appends (before: every run counted from 1 again, so after=N skipped the first N changes).
  WriteFile("c.yaml", kReplicatedConfig);
  auto http = net::NewHttpClient();
  std::uint64_t before_restart = 0;
  {
    CliProcess service(dir_.str(), {"-c", "c.yaml", "run"});
    std::string url = ListeningUrl(service);
    ASSERT_FALSE(url.empty());
    for (const char* id : {"a1", "a2", "a3"}) {
      std::string record = std::string(R"({"id":")") + id + R"(","name":"A"})";
      ASSERT_EQ(Run({"-c", "c.yaml", "insert", "users", record}).exit_code, 0);
    }
    auto feed = HttpGet(*http, url + "/changes");
    ASSERT_TRUE(feed.has_value());
    before_restart = std::stoull(feed->Header("x-s3db-head"));
    EXPECT_GE(before_restart, 3u);
    service.Signal(SIGTERM);
    EXPECT_EQ(service.Finish().exit_code, 0);
  }
  CliProcess service(dir_.str(), {"-c", "c.yaml", "run"});
  std::string url = ListeningUrl(service);
  ASSERT_FALSE(url.empty());
  ASSERT_EQ(Run({"-c", "c.yaml", "update", "users", "a1", R"({"name":"B"})"}).exit_code, 0);
  auto feed = HttpGet(*http, url + "/changes?after=" + std::to_string(before_restart));
  ASSERT_TRUE(feed.has_value());
  ASSERT_EQ(Lines(feed->body).size(), 1u) << feed->body;
  EXPECT_EQ(ParseObject(Lines(feed->body)[0]).at("changeId"), Json("users:a1:2"));
  EXPECT_GT(std::stoull(feed->Header("x-s3db-head")), before_restart);
  service.Signal(SIGTERM);
  (void)service.Finish();
}

TEST_F(CliTest, RunServesMoreKeepAliveClientsThanCores) {
  WriteFile("c.yaml", kReplicatedConfig);
  CliProcess service(dir_.str(), {"-c", "c.yaml", "run"});
  std::string url = ListeningUrl(service);
  ASSERT_FALSE(url.empty());

  std::vector<std::unique_ptr<KeepAliveClient>> clients;
  for (int i = 0; i < 24; ++i) {
    clients.push_back(std::make_unique<KeepAliveClient>(url));
    // Well under the 5 s keep-alive timeout that frees a thread held by an idle client.
    EXPECT_TRUE(clients.back()->GetHealth(std::chrono::milliseconds(2500)))
        << "client " << i + 1 << " of 24 got no answer while the others stayed connected";
  }
  for (auto& client : clients) EXPECT_TRUE(client->GetHealth(std::chrono::milliseconds(2500)));

  service.Signal(SIGTERM);
  CliResult stopped = service.Finish();
  EXPECT_EQ(stopped.exit_code, 0) << Describe(stopped);
}

// Regressions: a POST without a body (`curl -X POST URL`, no Content-Length) got a bare 400
// from cpp-httplib, and a bad query parameter answered {"message":"stoul"}.
TEST_F(CliTest, AdminApiTakesBodilessPostsAndNamesBadParameters) {
  WriteFile("c.yaml", kReplicatedConfig);
  CliProcess service(dir_.str(), {"-c", "c.yaml", "run"});
  std::string url = ListeningUrl(service);
  ASSERT_FALSE(url.empty());
  KeepAliveClient client(url);
  auto send = [&](const std::string& method, const std::string& target) {
    return client.Exchange(
        method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n",
        std::chrono::seconds(10));
  };
  auto body_of = [](const std::string& answer) {
    std::size_t end = answer.find("\r\n\r\n");
    return end == std::string::npos ? std::string() : answer.substr(end + 4);
  };
  for (const char* target :
       {"/replicators/backup/sync", "/replicators/backup/enable", "/replicators/backup/disable",
        "/dlq/backup/replay", "/dlq/backup/purge"}) {
    std::string answer = send("POST", target);
    EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << target << "\n" << answer;
    EXPECT_TRUE(ParseJsonObject(body_of(answer)).has_value()) << target << "\n" << answer;
  }
  struct Case {
    std::string method, target, status, message;
  };
  for (const Case& c : std::vector<Case>{
           {"GET", "/dlq/backup?limit=abc", "400", "limit: 'abc' is not a non-negative integer"},
           {"GET", "/dlq/backup?limit=-1", "400", "limit: '-1' is not a non-negative integer"},
           {"GET", "/changes?after=abc", "400", "after: 'abc' is not a non-negative integer"},
           {"GET", "/changes?after=0&timeoutMs=1.5", "400",
            "timeoutMs: '1.5' is not a non-negative integer"},
           {"GET", "/changes?after=99999999999999999999", "400",
            "after: '99999999999999999999' is too large"},
           {"POST", "/resources/users/records?upsert=yes", "400",
            "upsert: 'yes' is not true or false"},
           {"POST", "/resources/users/records", "400", "the request body is empty"},
           {"GET", "/nosuch", "404", "no such endpoint: GET /nosuch"},
           {"PUT", "/health", "404", "no such endpoint: PUT /health"},
       }) {
    std::string answer = send(c.method, c.target);
    EXPECT_EQ(answer.rfind("HTTP/1.1 " + c.status, 0), 0u) << c.target << "\n" << answer;
    auto body = ParseJsonObject(body_of(answer));
    ASSERT_TRUE(body.has_value()) << c.target << "\n" << answer;
    std::string message(body->at("error").at("message").as_string());
    EXPECT_NE(message.find(c.message), std::string::npos) << c.target << ": " << message;
  }
  service.Signal(SIGTERM);
  CliResult stopped = service.Finish();
  EXPECT_EQ(stopped.exit_code, 0) << Describe(stopped);
}

// The admin API has no authentication: `run` warns when it listens beyond loopback.
TEST_F(CliTest, RunWarnsWhenListeningOnANonLoopbackAddress) {
  WriteFile("c.yaml", kReplicatedConfig);
  for (const std::string listen : {"0.0.0.0:0", "127.0.0.1:0"}) {
    CliProcess service(dir_.str(), {"-c", "c.yaml", "run", "--listen", listen});
    ASSERT_FALSE(ListeningUrl(service).empty());
    service.Signal(SIGTERM);
    CliResult stopped = service.Finish();
    EXPECT_EQ(stopped.exit_code, 0) << Describe(stopped);
    bool warned =
        stopped.err.find("s3db: warning: listening on http://0.0.0.0:") != std::string::npos &&
        stopped.err.find("the admin API has no authentication") != std::string::npos &&
        stopped.err.find("listen on 127.0.0.1 (--listen)") != std::string::npos;
    EXPECT_EQ(warned, listen == "0.0.0.0:0") << listen << "\n" << stopped.err;
  }
}

TEST_F(CliTest, RunReportsAPausedReplicatorAsUnhealthyWithoutSecrets) {
  WriteFile("c.yaml", R"(connection: file://./data
resources:
  users: {}
replicator:
  retryBaseMs: 10
  maxBackoffMs: 200
  replicators:
    - driver: s3db
      id: down
      resources: [users]
      config: { connectionString: "http://KEY:TOPSECRET@127.0.0.1:1/bucket" }
http: { listen: "127.0.0.1:0" }
)");
  CliProcess service(dir_.str(), {"-c", "c.yaml", "--log-level", "debug", "run"});
  std::string url = ListeningUrl(service);
  ASSERT_FALSE(url.empty());
  auto http = net::NewHttpClient();

  // The target is down: through the service too, the write waits (--wait) and warns.
  CliResult inserted = Run({"-c", "c.yaml", "--wait", "1", "insert", "users", R"({"id":"a"})"});
  ASSERT_EQ(inserted.exit_code, 0) << Describe(inserted);
  EXPECT_NE(inserted.err.find("warning: replication did not finish within 1 s"), std::string::npos)
      << inserted.err;

  Result<net::HttpResponse> health = MakeError(ErrorCode::kInternal, "not asked");
  for (int attempt = 0; attempt < 100; ++attempt) {
    health = HttpGet(*http, url + "/health");
    ASSERT_TRUE(health.has_value()) << health.error().message;
    if (health->status == 503) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(health->status, 503) << health->body;
  EXPECT_NE(health->body.find("\"status\":\"unhealthy\""), std::string::npos) << health->body;
  EXPECT_NE(health->body.find("\"state\":\"paused\""), std::string::npos) << health->body;
  EXPECT_EQ(health->body.find("TOPSECRET"), std::string::npos) << health->body;

  auto metrics = HttpGet(*http, url + "/metrics");
  ASSERT_TRUE(metrics.has_value());
  EXPECT_NE(metrics->body.find(
                "s3db_replicator_state{replicator=\"down\",driver=\"s3db\",state=\"paused\"} 1"),
            std::string::npos)
      << metrics->body;
  CliResult stats = Run({"-c", "c.yaml", "replicators", "stats", "down"});
  EXPECT_EQ(stats.exit_code, 0) << Describe(stats);
  EXPECT_EQ(stats.out.find("TOPSECRET"), std::string::npos) << stats.out;

  service.Signal(SIGINT);
  CliResult stopped = service.Finish();
  EXPECT_EQ(stopped.exit_code, 0) << Describe(stopped);
  EXPECT_EQ(stopped.err.find("TOPSECRET"), std::string::npos) << stopped.err;
  EXPECT_EQ(stopped.out.find("TOPSECRET"), std::string::npos) << stopped.out;
}

TEST_F(CliTest, RunKeepsAWebhookOutageOfOneChangePausedAndUnhealthy) {
  // Nothing listens on port 1; the webhook's own retryDelay doubles (100, 200, ... ms). The
  // replicator must stay paused (reason unavailable) and /health 503 all along, not only for
  // the short pause after each failure.
  WriteFile("c.yaml", R"(connection: file://./data
resources:
  users: {}
replicator:
  replicators:
    - driver: webhook
      id: hook
      config: { url: "http://127.0.0.1:1/x", retryDelay: 100 }
http: { listen: "127.0.0.1:0" }
)");
  CliProcess service(dir_.str(), {"-c", "c.yaml", "run"});
  std::string url = ListeningUrl(service);
  ASSERT_FALSE(url.empty());
  auto http = net::NewHttpClient();
  CliResult inserted = Run({"-c", "c.yaml", "--wait", "0", "insert", "users", R"({"id":"a"})"});
  ASSERT_EQ(inserted.exit_code, 0) << Describe(inserted);

  Result<net::HttpResponse> health = MakeError(ErrorCode::kInternal, "not asked");
  for (int attempt = 0; attempt < 100; ++attempt) {
    health = HttpGet(*http, url + "/health");
    ASSERT_TRUE(health.has_value()) << health.error().message;
    if (health->status == 503) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(health->status, 503) << health->body;
  for (int sample = 0; sample < 30; ++sample) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    health = HttpGet(*http, url + "/health");
    ASSERT_TRUE(health.has_value()) << health.error().message;
    ASSERT_EQ(health->status, 503) << "sample " << sample << ": " << health->body;
    EXPECT_NE(health->body.find("\"pauseReason\":\"unavailable\""), std::string::npos)
        << health->body;
  }
  service.Signal(SIGINT);
  CliResult stopped = service.Finish();
  EXPECT_EQ(stopped.exit_code, 0) << Describe(stopped);
}

TEST_F(CliTest, ExportWritesEveryRecordToEachFormat) {
  ASSERT_EQ(Run({"resource", "create", "users", "--attributes",
                 R"({"name":"string|required","age":"integer","tags":"array"})"})
                .exit_code,
            0);
  // 1,203 records: more than two pages of the listing (500 each).
  std::string batch = "[";
  for (int i = 0; i < 1200; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "n%04d", i);
    batch += std::string(i ? "," : "") + R"({"id":")" + id + R"(","name":"N","age":)" +
             std::to_string(i) + "}";
  }
  batch += "]";
  ASSERT_EQ(Run({"insert", "users", "-"}, batch).exit_code, 0);
  ASSERT_EQ(Run({"insert", "users",
                 R"([{"id":"a1","name":"Zoë, \"quoted\"\nline 😀","age":9007199254740993,)"
                 R"("tags":["x",1]},{"id":"a2","name":"Bob","extra":true}])"})
                .exit_code,
            0);

  struct Case {
    std::string file;
    std::vector<std::string> extra;
    std::string format;
  };
  for (const Case& c : std::vector<Case>{
           {"users.csv", {}, "csv"},
           {"users.jsonl", {}, "jsonl"},
           {"users.jsonl.gz", {}, "jsonl"},
           {"users.parquet", {"--options", R"({"compression":"zstd"})"}, "parquet"},
           {"users.xlsx", {}, "excel"},
           {"dump.txt", {"--format", "csv", "--options", R"({"delimiter":";"})"}, "csv"}}) {
    std::vector<std::string> args{"export", "--resource", "users", "--output", c.file};
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    CliResult exported = Run(args);
    ASSERT_EQ(exported.exit_code, 0) << c.file << "\n" << Describe(exported);
    JsonObject report = ParseObject(Lines(exported.out).at(0));
    EXPECT_EQ(report.at("records"), Json(1202)) << c.file;
    EXPECT_EQ(report.at("skipped"), Json(0)) << c.file;
    EXPECT_EQ(report.at("format"), Json(c.format)) << c.file;
    EXPECT_EQ(report.at("file"), Json(c.file));
    EXPECT_FALSE(std::filesystem::exists(dir_.path() / (c.file + ".tmp"))) << c.file;
  }

  auto read = [&](const std::string& name) {
    return formats::testing::ReadFileBytes((dir_.path() / name).string());
  };
  // CSV: header (id, attributes in definition order, then other fields), RFC 4180 quoting,
  // every digit.
  auto csv = formats::testing::ParseCsv(read("users.csv"));
  ASSERT_EQ(csv.size(), 1203u);
  EXPECT_EQ(csv[0], (std::vector<std::string>{"id", "name", "age", "tags", "_rev", "extra"}));
  EXPECT_EQ(csv[1], (std::vector<std::string>{"a1", "Zoë, \"quoted\"\nline 😀",
                                              "9007199254740993", R"(["x",1])", "1", ""}));
  EXPECT_EQ(csv[2][5], "true");
  EXPECT_EQ(csv[1202][0], "n1199");
  auto semicolons = formats::testing::ParseCsv(read("dump.txt"), {.delimiter = ';'});
  EXPECT_EQ(semicolons, csv);
  // JSON Lines: one object per record, exactly as stored.
  std::vector<std::string> lines = Lines(read("users.jsonl"));
  ASSERT_EQ(lines.size(), 1202u);
  EXPECT_EQ(ParseObject(lines[0]).at("age"), Json(9007199254740993LL));
  EXPECT_EQ(ParseObject(lines[0]).at("name"), Json("Zoë, \"quoted\"\nline 😀"));
  std::string gz = read("users.jsonl.gz");
  ASSERT_GE(gz.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(gz[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(gz[1]), 0x8b);
  EXPECT_EQ(read("users.xlsx").substr(0, 2), "PK");
  // Parquet, read by DuckDB.
  std::string why_not;
  auto readers = formats::testing::FindParquetReaders(why_not);
  if (!readers) {
    if (formats::testing::RunningInCi()) FAIL() << why_not;
    GTEST_SKIP() << why_not;
  }
  Json rows = formats::testing::RunReader(
      *readers, "duckdb-sql", (dir_.path() / "users.parquet").string(),
      "SELECT count(*) AS n, sum(age) FILTER (WHERE id LIKE 'n%') AS s, "
      "max(age)::VARCHAR AS big, (SELECT name FROM read_parquet($FILE) WHERE id = 'a1') AS name "
      "FROM read_parquet($FILE)");
  ASSERT_TRUE(rows.is_array()) << ToJson(rows);
  const JsonObject& totals = rows.as_array().at(0).as_object();
  EXPECT_EQ(totals.at("n"), Json("1202"));
  EXPECT_EQ(totals.at("s"), Json(std::to_string(1199 * 1200 / 2)));
  EXPECT_EQ(totals.at("big"), Json("9007199254740993"));
  EXPECT_EQ(totals.at("name"), Json("Zoë, \"quoted\"\nline 😀"));
}

TEST_F(CliTest, ExportErrorsNameTheOptionAndLeaveNoFile) {
  ASSERT_EQ(Run({"resource", "create", "users", "--attributes", R"({"age":"integer"})"}).exit_code,
            0);
  ASSERT_EQ(
      Run({"insert", "users", R"([{"id":"ok","age":1},{"id":"huge","age":18446744073709551615}])"})
          .exit_code,
      0);
  CliResult unknown = Run({"export", "-r", "users", "-o", "users.txt"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.err,
            "s3db: --output: cannot tell the format from 'users.txt' (.csv, .jsonl, .jsonl.gz, "
            ".parquet, .xlsx); use --format csv|jsonl|parquet|excel\n");
  CliResult format = Run({"export", "-r", "users", "-o", "users.txt", "--format", "xml"});
  EXPECT_EQ(format.exit_code, 1);
  EXPECT_EQ(format.err,
            "s3db: --format: unknown file format 'xml' (use csv, jsonl, parquet or excel)\n");
  CliResult option = Run({"export", "-r", "users", "-o", "u.parquet", "--options",
                          R"({"compression":"rar"})"});
  EXPECT_EQ(option.exit_code, 1);
  EXPECT_NE(option.err.find("s3db: --options: option `compression` must be one of"),
            std::string::npos)
      << option.err;
  CliResult misspelt =
      Run({"export", "-r", "users", "-o", "u.parquet", "--options", R"({"compresion":"zstd"})"});
  EXPECT_EQ(misspelt.exit_code, 1);
  EXPECT_EQ(misspelt.err,
            "s3db: --options: compresion: unknown option (known: compression, "
            "rowGroupSize, dictionary) (did you mean 'compression'?)\n");
  CliResult resource = Run({"export", "-r", "nope", "-o", "n.csv"});
  EXPECT_EQ(resource.exit_code, 1);
  EXPECT_NE(resource.err.find("resource 'nope' does not exist"), std::string::npos)
      << resource.err;
  for (const char* name : {"u.parquet", "u.parquet.tmp", "n.csv", "n.csv.tmp"}) {
    EXPECT_FALSE(std::filesystem::exists(dir_.path() / name)) << name;
  }
  // A record the format cannot hold (2^64 - 1 in Parquet's INT64 column) is reported and
  // left out; the file holds the others and the exit code is 1.
  CliResult skipped = Run({"export", "-r", "users", "-o", "u.parquet"});
  EXPECT_EQ(skipped.exit_code, 1) << Describe(skipped);
  EXPECT_NE(skipped.err.find("s3db: u.parquet: record \"huge\" skipped: "), std::string::npos)
      << skipped.err;
  EXPECT_NE(skipped.err.find("'age'"), std::string::npos) << skipped.err;
  JsonObject report = ParseObject(Lines(skipped.out).at(0));
  EXPECT_EQ(report.at("records"), Json(1));
  EXPECT_EQ(report.at("skipped"), Json(1));
  EXPECT_TRUE(std::filesystem::exists(dir_.path() / "u.parquet"));
  // CSV holds it.
  CliResult csv = Run({"export", "-r", "users", "-o", "u.csv"});
  EXPECT_EQ(csv.exit_code, 0) << Describe(csv);
  EXPECT_NE(formats::testing::ReadFileBytes((dir_.path() / "u.csv").string())
                .find("huge,18446744073709551615,"),
            std::string::npos);
}

// Regression: cpp-httplib's default SO_REUSEPORT let a second `s3db run` (another folder,
// another database) listen on the same port, and the kernel split CLI writes between them.
TEST_F(CliTest, ASecondRunOnAPortInUseIsRefused) {
  for (const char* folder : {"one", "two"}) {
    std::filesystem::create_directories(dir_.path() / folder);
    WriteFile(std::string(folder) + "/c.yaml",
              "connection: file://./src\nhttp: { listen: \"127.0.0.1:0\" }\n");
  }
  CliProcess first((dir_.path() / "one").string(), {"-c", "c.yaml", "run"});
  std::string url = ListeningUrl(first);
  ASSERT_FALSE(url.empty());
  std::string address = url.substr(std::string("http://").size());

  CliProcess second((dir_.path() / "two").string(), {"-c", "c.yaml", "run", "--listen", address});
  CliResult refused = second.Finish(std::chrono::seconds(30));
  EXPECT_EQ(refused.exit_code, 1) << Describe(refused);
  EXPECT_NE(refused.err.find("cannot listen on " + address + " (in use"), std::string::npos)
      << refused.err;
  EXPECT_EQ(refused.out.find("listening"), std::string::npos) << refused.out;

  first.Signal(SIGTERM);
  EXPECT_EQ(first.Finish().exit_code, 0);
}

// Regression: `import --upsert` wrote the rows of one batch in parallel, so when an id
// repeated, a random row won (v=7, 9, 12, ...) instead of the last one of the file.
TEST_F(CliTest, ImportUpsertKeepsTheLastRowOfEachId) {
  std::string csv = "id,v\n", jsonl;
  for (int i = 1; i <= 100; ++i) {
    csv +=
        "dup," + std::to_string(i) + "\nk" + std::to_string(i % 7) + "," + std::to_string(i) + "\n";
    jsonl += R"({"id":"dup","v":)" + std::to_string(i) + "}\n";
  }
  WriteFile("d.csv", csv);
  WriteFile("d.jsonl", jsonl);
  ASSERT_EQ(Run({"resource", "create", "t"}).exit_code, 0);
  ASSERT_EQ(Run({"resource", "create", "j"}).exit_code, 0);
  for (const char* batch : {"500", "7", "1"}) {
    CliResult csv_import = Run(
        {"import", "d.csv", "--resource", "t", "--upsert", "--batch-size", batch, "--no-progress"});
    ASSERT_EQ(csv_import.exit_code, 0) << Describe(csv_import);
    CliResult jsonl_import = Run({"import", "d.jsonl", "--resource", "j", "--upsert",
                                  "--batch-size", batch, "--no-progress"});
    ASSERT_EQ(jsonl_import.exit_code, 0) << Describe(jsonl_import);
    EXPECT_EQ(ParseObject(Run({"get", "t", "dup"}).out).at("v"), Json(100)) << batch;
    EXPECT_EQ(ParseObject(Run({"get", "t", "k2"}).out).at("v"), Json(100)) << batch;
    EXPECT_EQ(ParseObject(Run({"get", "t", "k3"}).out).at("v"), Json(94)) << batch;
    EXPECT_EQ(ParseObject(Run({"get", "j", "dup"}).out).at("v"), Json(100)) << batch;
  }

  // Without --upsert the first row of an id is stored and the later ones fail, in order.
  CliResult inserted =
      Run({"insert", "t", R"([{"id":"n","v":1},{"id":"n","v":2},{"id":"n","v":3}])"});
  EXPECT_EQ(inserted.exit_code, 1) << Describe(inserted);
  std::vector<std::string> lines = Lines(inserted.out);
  ASSERT_EQ(lines.size(), 3u) << inserted.out;
  EXPECT_EQ(ParseObject(lines[0]).at("v"), Json(1)) << inserted.out;
  EXPECT_NE(lines[1].find("already_exists"), std::string::npos) << inserted.out;
  EXPECT_NE(lines[2].find("already_exists"), std::string::npos) << inserted.out;
}

// A webhook replicator whose target never answers (nothing listens on port 1).
const char* kDeadWebhookConfig = R"(connection: file://./src
resources:
  t: { attributes: { v: number } }
replicator:
  replicators:
    - driver: webhook
      id: w
      resources: [t]
      config: { url: "http://127.0.0.1:1/x" }
http: { listen: "127.0.0.1:0" }
)";

// Regression: a POST /replicators/ID/sync still waiting for a dead target (the client gave
// up) kept the HTTP server's thread pool from stopping: SIGTERM logged "stopping" and the
// process never exited. Every request that waits must give up when the service stops.
TEST_F(CliTest, RunStopsWhileRequestsStillWaitForADeadTarget) {
  WriteFile("c.yaml", kDeadWebhookConfig);
  CliProcess service(dir_.str(), {"-c", "c.yaml", "run"});
  std::string url = ListeningUrl(service);
  ASSERT_FALSE(url.empty());
  CliResult inserted = Run({"-c", "c.yaml", "--wait", "0", "insert", "t", R"({"id":"a"})"});
  ASSERT_EQ(inserted.exit_code, 0) << Describe(inserted);

  // Clients that give up after a second, leaving their requests waiting in the service.
  auto http = net::NewHttpClient();
  for (const char* path : {"/replicators/w/sync", "/replication/wait?seconds=600"}) {
    net::HttpRequest request;
    request.method = "POST";
    request.url = url + path;
    request.timeout = std::chrono::seconds(1);
    (void)http->Send(request);
  }
  std::thread poll([&] {
    auto client = net::NewHttpClient();
    (void)HttpGet(*client, url + "/changes?after=0&timeoutMs=60000");
  });

  auto signalled = std::chrono::steady_clock::now();
  service.Signal(SIGTERM);
  CliResult stopped = service.Finish(std::chrono::seconds(40));
  poll.join();
  EXPECT_EQ(stopped.exit_code, 0) << Describe(stopped);
  EXPECT_NE(stopped.out.find("s3db run: stopped"), std::string::npos) << stopped.out;
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, std::chrono::seconds(30));
}

// Regression: `replicators sync` with the target down waited for 24 hours, ignoring --wait,
// and printed nothing.
TEST_F(CliTest, SyncGivesUpAfterWaitWhenTheTargetIsDown) {
  WriteFile("c.yaml", kDeadWebhookConfig);
  ASSERT_EQ(Run({"--connection", "file://./src", "resource", "create", "t"}).exit_code, 0);
  ASSERT_EQ(Run({"--connection", "file://./src", "insert", "t", R"({"id":"b"})"}).exit_code, 0);

  auto started = std::chrono::steady_clock::now();
  CliResult synced = Run({"-c", "c.yaml", "--wait", "2", "replicators", "sync", "w"});
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
  EXPECT_EQ(synced.exit_code, 0) << Describe(synced);
  ASSERT_EQ(Lines(synced.out).size(), 1u) << Describe(synced);
  JsonObject answer = ParseObject(Lines(synced.out)[0]);
  EXPECT_EQ(answer.at("replicator"), Json("w"));
  EXPECT_EQ(answer.at("enqueued"), Json(1));
  EXPECT_EQ(answer.at("settled"), Json(0));
  EXPECT_EQ(answer.at("done"), Json(false));
  EXPECT_NE(synced.err.find("did not finish within 2 s (--wait)"), std::string::npos) << synced.err;

  // The same through a running service.
  CliProcess service(dir_.str(), {"-c", "c.yaml", "run"});
  ASSERT_FALSE(ListeningUrl(service).empty());
  started = std::chrono::steady_clock::now();
  CliResult remote = Run({"-c", "c.yaml", "--wait", "1", "replicators", "sync", "w"});
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
  EXPECT_EQ(remote.exit_code, 0) << Describe(remote);
  ASSERT_EQ(Lines(remote.out).size(), 1u) << Describe(remote);
  EXPECT_EQ(ParseObject(Lines(remote.out)[0]).at("done"), Json(false)) << remote.out;
  EXPECT_NE(remote.err.find("the running s3db run keeps delivering them"), std::string::npos)
      << remote.err;
  service.Signal(SIGTERM);
  EXPECT_EQ(service.Finish().exit_code, 0);
}

// Regression: GET /changes echoed an `after` beyond the head as X-S3db-Head, so a client
// resuming there skipped every change up to it without notice.
TEST_F(CliTest, ChangesRefusesAnAfterBeyondTheHead) {
  WriteFile("c.yaml", kReplicatedConfig);
  CliProcess service(dir_.str(), {"-c", "c.yaml", "run"});
  std::string url = ListeningUrl(service);
  ASSERT_FALSE(url.empty());
  ASSERT_EQ(Run({"-c", "c.yaml", "insert", "users", R"({"id":"c1","name":"C"})"}).exit_code, 0);
  auto http = net::NewHttpClient();
  auto head_answer = HttpGet(*http, url + "/changes");
  ASSERT_TRUE(head_answer.has_value());
  std::uint64_t head = std::stoull(head_answer->Header("x-s3db-head"));
  ASSERT_GE(head, 1u);

  auto beyond = HttpGet(*http, url + "/changes?timeoutMs=0&after=" + std::to_string(head + 5));
  ASSERT_TRUE(beyond.has_value());
  EXPECT_EQ(beyond->status, 400) << beyond->body;
  std::string expected =
      "after: " + std::to_string(head + 5) + " is beyond the feed's head " + std::to_string(head);
  EXPECT_NE(beyond->body.find(expected), std::string::npos) << beyond->body;
  EXPECT_NE(beyond->body.find("invalid_argument"), std::string::npos) << beyond->body;

  auto at_head = HttpGet(*http, url + "/changes?timeoutMs=0&after=" + std::to_string(head));
  ASSERT_TRUE(at_head.has_value());
  EXPECT_EQ(at_head->status, 200) << at_head->body;
  EXPECT_EQ(at_head->Header("x-s3db-head"), std::to_string(head));
  auto before = HttpGet(*http, url + "/changes?timeoutMs=0&after=" + std::to_string(head - 1));
  ASSERT_TRUE(before.has_value());
  ASSERT_EQ(Lines(before->body).size(), 1u) << before->body;
  EXPECT_EQ(ParseObject(Lines(before->body)[0]).at("changeId"), Json("users:c1:1"));
  service.Signal(SIGTERM);
  EXPECT_EQ(service.Finish().exit_code, 0);
}

// Regression: CLI11 read `--limit -1` into a std::size_t as the largest value, so a negative
// limit printed everything (the admin API refuses it).
TEST_F(CliTest, NegativeCountsAreRefusedNamingTheOption) {
  WriteFile("c.yaml", kReplicatedConfig);
  ASSERT_EQ(Run({"-c", "c.yaml", "insert", "users", R"({"id":"l1","name":"L"})"}).exit_code, 0);
  struct Case {
    std::vector<std::string> args;
    std::string option;
  };
  for (const Case& c : std::vector<Case>{{{"list", "users", "--limit", "-1"}, "--limit"},
                                         {{"list", "users", "--offset=-2"}, "--offset"},
                                         {{"query", "users", "{}", "--limit", "-1"}, "--limit"},
                                         {{"dlq", "list", "backup", "--limit", "-3"}, "--limit"},
                                         {{"list", "users", "--limit", "1.5"}, "--limit"},
                                         {{"replicators", "tail", "--count", "-1"}, "--count"}}) {
    std::vector<std::string> args = {"-c", "c.yaml"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    CliResult refused = Run(args);
    EXPECT_EQ(refused.exit_code, 2) << Describe(refused);
    EXPECT_NE(refused.err.find(c.option), std::string::npos) << refused.err;
    EXPECT_NE(refused.err.find("is not a non-negative integer"), std::string::npos) << refused.err;
    EXPECT_EQ(refused.out, "") << refused.out;
  }
  CliResult one = Run({"-c", "c.yaml", "list", "users", "--limit", "1"});
  EXPECT_EQ(one.exit_code, 0) << Describe(one);
  EXPECT_EQ(Lines(one.out).size(), 1u);
}

// Regression: `resource create` on an existing name silently replaced its definition.
TEST_F(CliTest, ResourceCreateOnAnExistingNameNeedsReplace) {
  ASSERT_EQ(Run({"resource", "create", "users", "--attributes", R"({"name":"string"})"}).exit_code,
            0);
  CliResult again = Run({"resource", "create", "users", "--attributes", R"({"age":"number"})"});
  EXPECT_EQ(again.exit_code, 1) << Describe(again);
  EXPECT_NE(again.err.find("resource 'users' already exists"), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("--replace"), std::string::npos) << again.err;
  CliResult listed = Run({"resource", "list"});
  EXPECT_NE(listed.out.find(R"("name":"string")"), std::string::npos) << listed.out;
  EXPECT_EQ(listed.out.find(R"("age")"), std::string::npos) << listed.out;

  CliResult replaced =
      Run({"resource", "create", "users", "--replace", "--attributes", R"({"age":"number"})"});
  EXPECT_EQ(replaced.exit_code, 0) << Describe(replaced);
  listed = Run({"resource", "list"});
  EXPECT_NE(listed.out.find(R"("age":"number")"), std::string::npos) << listed.out;
  // --replace also creates.
  EXPECT_EQ(Run({"resource", "create", "fresh", "--replace"}).exit_code, 0);
}

// Regressions: `-c DIR` said "the configuration is empty", `-c missing.yaml` did not say why
// it could not be read, a read of a file:// database that does not exist created its folder,
// and a JSON element that is not an object was named by its C++ kind ("got int64").
TEST_F(CliTest, MessagesSayWhatIsWrongAndReadsCreateNothing) {
  std::filesystem::create_directories(dir_.path() / "folder");
  CliResult directory = Run({"-c", "folder", "resource", "list"});
  EXPECT_EQ(directory.exit_code, 1) << Describe(directory);
  EXPECT_NE(directory.err.find("'folder' is a directory"), std::string::npos) << directory.err;

  CliResult missing = Run({"-c", "nonexistent.yaml", "resource", "list"});
  EXPECT_EQ(missing.exit_code, 1) << Describe(missing);
  EXPECT_NE(missing.err.find("'nonexistent.yaml': No such file or directory"), std::string::npos)
      << missing.err;

  for (const std::vector<std::string>& read :
       std::vector<std::vector<std::string>>{{"list", "users"},
                                             {"get", "users", "x"},
                                             {"query", "users", "{}"},
                                             {"resource", "list"},
                                             {"export", "-r", "users", "-o", "u.csv"}}) {
    std::vector<std::string> args = {"--connection", "file://./nope"};
    args.insert(args.end(), read.begin(), read.end());
    CliResult refused = Run(args);
    EXPECT_EQ(refused.exit_code, 1) << read[0] << ": " << Describe(refused);
    EXPECT_NE(refused.err.find("the database file://./nope does not exist"), std::string::npos)
        << refused.err;
    EXPECT_FALSE(std::filesystem::exists(dir_.path() / "nope")) << read[0];
  }
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "u.csv"));
  // The default database, and a config's, are no different (a config that declares
  // resources creates them before every command, so it creates the database too).
  CliResult default_read = Run({"list", "users"});
  EXPECT_EQ(default_read.exit_code, 1) << Describe(default_read);
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "s3db-data"));
  WriteFile("bare.yaml", "connection: file://./nope2\n");
  CliResult config_read = Run({"-c", "bare.yaml", "get", "users", "x"});
  EXPECT_EQ(config_read.exit_code, 1) << Describe(config_read);
  EXPECT_NE(config_read.err.find("file://./nope2 does not exist"), std::string::npos)
      << config_read.err;
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "nope2"));

  ASSERT_EQ(Run({"resource", "create", "t"}).exit_code, 0);
  WriteFile("n.json", R"([{"id":"a"}, 42, "x", [1], true, null])");
  CliResult imported = Run({"import", "n.json", "-r", "t", "--no-progress"});
  EXPECT_EQ(imported.exit_code, 1) << Describe(imported);
  for (const char* got :
       {"got a number", "got a string", "got an array", "got a boolean", "got null"}) {
    EXPECT_NE(imported.err.find(got), std::string::npos) << got << "\n" << imported.err;
  }
  EXPECT_EQ(imported.err.find("int64"), std::string::npos) << imported.err;
}

}  // namespace
}  // namespace s3db
