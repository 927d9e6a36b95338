using EdgeSlm.Kernels.Attention;
using EdgeSlm.Kernels.MatMul;

namespace EdgeSlm.Kernels.Tests.Attention;

public sealed class ParallelGroupedQueryAttentionTests
{
    [Theory]
    [InlineData(1, 9, 3, 64, 1)]
    [InlineData(1, 14, 2, 64, 70)]
    [InlineData(7, 4, 2, 16, 1)]
    [InlineData(64, 9, 3, 64, 5)]
    [InlineData(300, 4, 4, 8, 2)]
    public void Batched_attention_on_two_threads_equals_the_vector_tier_per_token_bit_for_bit(int tokens, int heads, int kvHeads, int headSize, int firstLength)
    {
        int positions = firstLength - 1 + tokens;
        float[] queries = TestData.Gaussian(tokens * heads * headSize, seed: 1, scale: 2f);
        float[] keys = TestData.Gaussian(positions * kvHeads * headSize, seed: 2, scale: 2f);
        float[] values = TestData.Gaussian(positions * kvHeads * headSize, seed: 3);
        float scale = 1f / MathF.Sqrt(headSize);
        var expected = new float[queries.Length];
        var scores = new float[positions];
        for (int t = 0; t < tokens; t++)
        {
            GroupedQueryAttention.ComputeVector(queries.AsSpan(t * heads * headSize, heads * headSize), keys, values, firstLength + t,
                heads, kvHeads, headSize, scale, scores, expected.AsSpan(t * heads * headSize, heads * headSize));
        }
        foreach (int threads in new[] { 1, 2 })
        {
            using var pool = new EdgeSlm.Kernels.MatMul.QuantMatMul(threads);
            var attention = new ParallelGroupedQueryAttention(pool, positions);
            var actual = new float[queries.Length];
            attention.Compute(queries, keys, values, firstLength, tokens, heads, kvHeads, headSize, scale, actual);
            Assert.Equal(expected, actual);
        }
    }
}
