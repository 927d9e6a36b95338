using System.Numerics;
using System.Runtime.Intrinsics;
using EdgeSlm.Kernels.Attention;
using EdgeSlm.Kernels.Dispatch;

namespace EdgeSlm.Kernels.Tests.Attention;

public unsafe class AttentionTests
{
    /// <summary>
    /// The tiers differ from the reference in the order of float additions, fused multiply-adds and the exponential
    /// (TensorPrimitives.Exp against MathF.Exp): at most this times max|v| per context element.
    /// </summary>
    private const double ContextTolerance = 1e-5;

    /// <summary>
    /// Plus this per unit of the largest |score|: a score's float rounding (relative 1e-7) moves its weight by
    /// e^(rounding error), which grows with the score.
    /// </summary>
    private const double ContextTolerancePerUnitScore = 1e-6;

    /// <summary>The attention tiers this CPU accelerates besides the reference.</summary>
    private static IEnumerable<string> Tiers =>
        new[] { ("vector", Vector.IsHardwareAccelerated), ("vector512", Vector512.IsHardwareAccelerated) }.Where(t => t.Item2).Select(t => t.Item1);

    private static ScaledDotProductAttention.Tier Tier(string name) => name switch
    {
        "vector" => ScaledDotProductAttention.ComputeVector,
        "vector512" => ScaledDotProductAttention.ComputeVector512,
        _ => ScaledDotProductAttention.ComputeReference,
    };

    [Fact]
    public void Reference_float_path_runs_the_reference_attention()
    {
        Assert.Equal((ScaledDotProductAttention.Tier)ScaledDotProductAttention.ComputeReference, ScaledDotProductAttention.TierOf(FloatPath.Reference));
    }

    public static TheoryData<string, int, int, int> Cases()
    {
        var data = new TheoryData<string, int, int, int>();
        foreach (string tier in Tiers)
        {
            // Head sizes: MiniLM's 32, whole vectors of every width, odd tails, smaller than a vector.
            foreach ((int tokens, int heads, int headSize) in new[] { (1, 1, 32), (2, 12, 32), (3, 2, 7), (10, 12, 32), (12, 12, 32), (17, 3, 48), (9, 2, 64), (5, 4, 16), (33, 1, 3), (64, 2, 40) })
            {
                data.Add(tier, tokens, heads, headSize);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Attention_tiers_match_the_reference(string tier, int tokens, int heads, int headSize)
    {
        AssertMatchesReference(Tier(tier), tokens, heads, headSize, magnitude: 1f, seed: tokens * 100 + headSize);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Attention_tiers_stay_finite_and_match_on_large_scores(string tier, int tokens, int heads, int headSize)
    {
        // Scores in the hundreds: exp overflows unless the maximum is subtracted first.
        AssertMatchesReference(Tier(tier), tokens, heads, headSize, magnitude: 8f, seed: tokens * 100 + headSize + 1);
    }

    [Fact]
    public void A_single_token_attends_only_to_itself()
    {
        float[] q = TestData.Gaussian(64, 1), k = TestData.Gaussian(64, 2), v = TestData.Gaussian(64, 3);
        var context = new float[64];
        ScaledDotProductAttention.Compute(q, k, v, context, 1, 2, 32, 0.5f, new float[2]);
        Assert.Equal(v, context);
    }

    [Fact]
    public void Compute_rejects_short_buffers()
    {
        var rows = new float[2 * 64];
        Assert.Throws<ArgumentException>(() => ScaledDotProductAttention.Compute(rows, rows, rows, new float[64], 2, 2, 32, 1f, new float[4]));
        Assert.Throws<ArgumentException>(() => ScaledDotProductAttention.Compute(rows, rows, rows, new float[128], 2, 2, 32, 1f, new float[3]));
        Assert.Throws<ArgumentOutOfRangeException>(() => ScaledDotProductAttention.Compute(rows, rows, rows, new float[128], 2, 0, 32, 1f, new float[4]));
    }

    private static void AssertMatchesReference(ScaledDotProductAttention.Tier tier, int tokens, int heads, int headSize, float magnitude, int seed)
    {
        int length = tokens * heads * headSize;
        float[] q = TestData.Gaussian(length, seed), k = TestData.Gaussian(length, seed + 1), v = TestData.Gaussian(length, seed + 2);
        for (int i = 0; i < length; i++)
        {
            q[i] *= magnitude;
            k[i] *= magnitude;
        }
        float scale = 1f / MathF.Sqrt(headSize);
        float[] expected = Run(ScaledDotProductAttention.ComputeReference, q, k, v, tokens, heads, headSize, scale);
        float[] actual = Run(tier, q, k, v, tokens, heads, headSize, scale);
        double largestScore = 0;
        for (int h = 0; h < heads; h++)
        {
            for (int i = 0; i < tokens; i++)
            {
                for (int j = 0; j < tokens; j++)
                {
                    double dot = 0;
                    for (int d = 0; d < headSize; d++)
                    {
                        dot += q[(i * heads + h) * headSize + d] * (double)k[(j * heads + h) * headSize + d];
                    }
                    largestScore = Math.Max(largestScore, Math.Abs(dot * scale));
                }
            }
        }
        double bound = (ContextTolerance + ContextTolerancePerUnitScore * largestScore) * v.Max(MathF.Abs);
        for (int i = 0; i < length; i++)
        {
            Assert.True(float.IsFinite(actual[i]) && Math.Abs(actual[i] - expected[i]) <= bound, $"element {i}: {actual[i]} against {expected[i]}");
        }
    }

    /// <summary>Runs a tier; guard floats past the end of the context and scores must stay untouched.</summary>
    private static float[] Run(ScaledDotProductAttention.Tier tier, float[] query, float[] key, float[] value, int tokens, int heads, int headSize, float scale)
    {
        int length = tokens * heads * headSize;
        var context = new float[length + 16];
        var scores = new float[heads * tokens + 16];
        context.AsSpan(length).Fill(-7f);
        scores.AsSpan(heads * tokens).Fill(-7f);
        fixed (float* q = query, k = key, v = value, c = context, s = scores)
        {
            tier(q, k, v, c, tokens, heads, headSize, scale, s);
        }
        Assert.All(context[length..], x => Assert.Equal(-7f, x));
        Assert.All(scores[(heads * tokens)..], x => Assert.Equal(-7f, x));
        return context[..length];
    }
}
