using EdgeSlm.Models.Llama;

namespace EdgeSlm.Models.Tests.Llama;

public sealed class TokenSamplerTests
{
    private static float[] Logits(int seed, int count = 5000)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 8 - 4)).ToArray();
    }

    [Fact]
    public void Temperature_zero_top_k_one_and_a_tiny_top_p_are_greedy()
    {
        float[] logits = Logits(1);
        int best = TokenSampler.ArgMax(logits);
        Assert.Equal(best, new TokenSampler(logits.Length).Next(logits));
        var topK = new TokenSampler(logits.Length, temperature: 2f, seed: 3, topK: 1);
        var topP = new TokenSampler(logits.Length, temperature: 2f, seed: 3, topP: 1e-9f);
        for (int i = 0; i < 50; i++)
        {
            Assert.Equal(best, topK.Next(logits));
            Assert.Equal(best, topP.Next(logits));
        }
    }

    [Fact]
    public void Draws_stay_within_top_k_and_top_p_and_repeat_with_the_seed()
    {
        float[] logits = Logits(2);
        int[] order = Enumerable.Range(0, logits.Length).OrderByDescending(i => logits[i]).ToArray();
        var allowedK = order.Take(7).ToHashSet();
        // The nucleus at p = 0.5 (softmax at temperature 1).
        double max = logits.Max(), total = logits.Sum(v => Math.Exp(v - max)), running = 0;
        var nucleus = new HashSet<int>();
        foreach (int id in order)
        {
            nucleus.Add(id);
            running += Math.Exp(logits[id] - max);
            if (running >= 0.5 * total) break;
        }
        var k = new TokenSampler(logits.Length, temperature: 1.5f, seed: 5, topK: 7);
        var p = new TokenSampler(logits.Length, temperature: 1.5f, seed: 5, topP: 0.5f);
        var seenK = new HashSet<int>();
        for (int i = 0; i < 400; i++)
        {
            int a = k.Next(logits);
            Assert.Contains(a, allowedK);
            seenK.Add(a);
            Assert.Contains(p.Next(logits), nucleus);
        }
        Assert.True(seenK.Count > 3, "top-k draws should spread over several of the 7");

        var first = new TokenSampler(logits.Length, temperature: 1f, seed: 9, topK: 50, topP: 0.9f);
        var second = new TokenSampler(logits.Length, temperature: 1f, seed: 9, topK: 50, topP: 0.9f);
        for (int i = 0; i < 100; i++) Assert.Equal(first.Next(logits), second.Next(logits));
    }

    [Fact]
    public void Sampling_allocates_nothing()
    {
        float[] logits = Logits(4);
        var sampler = new TokenSampler(logits.Length, temperature: 0.8f, seed: 1, topK: 40, topP: 0.95f);
        var all = new TokenSampler(logits.Length, temperature: 0.8f, seed: 1, topP: 0.9f);
        sampler.Next(logits);
        all.Next(logits);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 20; i++)
        {
            sampler.Next(logits);
            all.Next(logits);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
