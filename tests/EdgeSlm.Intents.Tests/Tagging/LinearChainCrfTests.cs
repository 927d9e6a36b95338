using EdgeSlm.Intents.Tagging;

namespace EdgeSlm.Intents.Tests.Tagging;

public sealed class LinearChainCrfTests
{
    /// <summary>A random CRF of <paramref name="slots"/> slots (1 + 2·slots tags) over <paramref name="steps"/> steps.</summary>
    private static (float[] Emissions, float[] Transitions, float[] Start, float[] End) RandomCrf(int slots, int steps, int seed)
    {
        var random = new Random(seed);
        int k = 1 + 2 * slots;
        float Next() => (float)(random.NextDouble() * 4 - 2);
        return (Enumerable.Range(0, steps * k).Select(_ => Next()).ToArray(), Enumerable.Range(0, k * k).Select(_ => Next()).ToArray(),
            Enumerable.Range(0, k).Select(_ => Next()).ToArray(), Enumerable.Range(0, k).Select(_ => Next()).ToArray());
    }

    /// <summary>Every path the BIO structure allows (and <paramref name="allowed"/>, when not empty).</summary>
    private static IEnumerable<int[]> AllowedPaths(int k, int steps, bool[] allowed)
    {
        var path = new int[steps];
        long total = (long)Math.Pow(k, steps);
        for (long n = 0; n < total; n++)
        {
            long rest = n;
            for (int t = 0; t < steps; t++, rest /= k) path[t] = (int)(rest % k);
            bool ok = SlotTags.CanStart(path[0]);
            for (int t = 0; t < steps && ok; t++)
            {
                ok = (allowed.Length == 0 || allowed[path[t]]) && (t == 0 || SlotTags.CanFollow(path[t - 1], path[t]));
            }
            if (ok) yield return (int[])path.Clone();
        }
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(1, 4, 2)]
    [InlineData(2, 3, 3)]
    [InlineData(2, 5, 4)]
    [InlineData(3, 4, 5)]
    public void Viterbi_finds_the_best_allowed_path_of_a_brute_force_search(int slots, int steps, int seed)
    {
        (float[] e, float[] a, float[] s, float[] n) = RandomCrf(slots, steps, seed);
        int k = 1 + 2 * slots;
        foreach (bool[] allowed in new[] { Array.Empty<bool>(), Enumerable.Range(0, k).Select(tag => SlotTags.SlotOf(tag) != 0).ToArray() })
        {
            int[] best = AllowedPaths(k, steps, allowed).MaxBy(p => LinearChainCrf.PathScore(e, a, s, n, p))!;
            var path = new int[steps];
            float score = LinearChainCrf.Decode(e, a, s, n, allowed, path);
            Assert.Equal(best, path);
            Assert.Equal(LinearChainCrf.PathScore(e, a, s, n, best), score, 4);
        }
    }

    [Theory]
    [InlineData(1, 3, 11)]
    [InlineData(2, 4, 12)]
    [InlineData(3, 3, 13)]
    public void Log_likelihood_is_the_gold_path_against_all_allowed_paths(int slots, int steps, int seed)
    {
        (float[] e, float[] a, float[] s, float[] n) = RandomCrf(slots, steps, seed);
        int k = 1 + 2 * slots;
        int[][] paths = AllowedPaths(k, steps, []).ToArray();
        double max = paths.Max(p => LinearChainCrf.PathScore(e, a, s, n, p));
        double logZ = max + Math.Log(paths.Sum(p => Math.Exp(LinearChainCrf.PathScore(e, a, s, n, p) - max)));
        int[] gold = paths[seed % paths.Length];
        double logLikelihood = LinearChainCrf.LogLikelihood(e, a, s, n, gold, new float[e.Length], new float[a.Length], new float[k], new float[k]);
        Assert.Equal(LinearChainCrf.PathScore(e, a, s, n, gold) - logZ, logLikelihood, 9);
    }

    [Theory]
    [InlineData(1, 4, 21)]
    [InlineData(2, 5, 22)]
    [InlineData(4, 6, 23)]
    public void Gradients_equal_finite_differences_of_the_log_likelihood(int slots, int steps, int seed)
    {
        (float[] e, float[] a, float[] s, float[] n) = RandomCrf(slots, steps, seed);
        int k = 1 + 2 * slots;
        // A gold path the structure allows: B then I of slot 0, O, B of the last slot, ...
        int[] gold = Enumerable.Range(0, steps).Select(t => (t % 4) switch { 0 => SlotTags.Begin(0), 1 => SlotTags.Inside(0), 2 => SlotTags.Outside, _ => SlotTags.Begin(slots - 1) }).ToArray();
        var ge = new float[e.Length];
        var ga = new float[a.Length];
        var gs = new float[k];
        var gn = new float[k];
        LinearChainCrf.LogLikelihood(e, a, s, n, gold, ge, ga, gs, gn);
        const float h = 1e-2f;
        const double tolerance = 2e-3; // central differences of float parameters, the log-likelihood in double
        foreach ((float[] parameters, float[] gradient) in new[] { (e, ge), (a, ga), (s, gs), (n, gn) })
        {
            for (int i = 0; i < parameters.Length; i++)
            {
                float saved = parameters[i];
                parameters[i] = saved + h;
                double up = LinearChainCrf.LogLikelihood(e, a, s, n, gold, new float[e.Length], new float[a.Length], new float[k], new float[k]);
                parameters[i] = saved - h;
                double down = LinearChainCrf.LogLikelihood(e, a, s, n, gold, new float[e.Length], new float[a.Length], new float[k], new float[k]);
                parameters[i] = saved;
                double numeric = (up - down) / (2 * h);
                // Barred transitions have no gradient and no effect.
                Assert.True(Math.Abs(numeric - gradient[i]) < tolerance, $"parameter {i} of {parameters.Length}: analytic {gradient[i]}, numeric {numeric}");
            }
        }
        Assert.Contains(ga, g => Math.Abs(g) > 0.01f);
    }
}
