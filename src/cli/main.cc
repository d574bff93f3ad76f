// Placeholder until the CLI lands.
#include <cstdio>
int main() {
  std::puts("s3db: CLI not built yet");
  return 1;
}
