// positive control (C++): std::thread, 100 MB vector, STL, 200 KB on both streams
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>
int main() {
    std::vector<long> acc(8);
    std::vector<std::thread> ts;
    for (int i = 0; i < 8; i++) ts.emplace_back([&acc, i] { for (int k = 0; k < 1000000; k++) acc[i] += k % 7; });
    for (auto &t : ts) t.join();
    std::vector<char> big(100u << 20, 7);
    std::map<std::string, int> m;
    for (int i = 0; i < 1000; i++) m[std::to_string(i)] = i;
    std::vector<int> v(1000);
    for (int i = 0; i < 1000; i++) v[i] = (i * 7919) % 1000;
    std::sort(v.begin(), v.end());
    std::string line(63, '1');
    for (int i = 0; i < 200 * 1024 / 64; i++) { std::cout << line << '\n'; std::cerr << line << '\n'; }
    std::cout << acc[7] << ' ' << int(big.back()) << ' ' << v.back() << ' ' << m.size() << std::endl;
    return 0;
}
