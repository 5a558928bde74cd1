// exponential template instantiation
template <int N> struct F { static const long v = F<N - 1>::v + F<N - 2>::v; };
template <> struct F<1> { static const long v = 1; };
template <> struct F<0> { static const long v = 0; };
template <int N, int M> struct G { static const long v = G<N - 1, M>::v + G<N, M - 1>::v; };
template <int M> struct G<0, M> { static const long v = M; };
template <int N> struct G<N, 0> { static const long v = N; };
int main() { return (int)(G<2000, 2000>::v & 1); }
