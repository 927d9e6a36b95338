using EdgeSlm.Kernels.Normalization;

namespace EdgeSlm.Kernels.Tests.Normalization;

/// <summary>The decoder's float kernels: every tier against its reference (RoPE bit-exact, the others within a stated tolerance).</summary>
public sealed class RmsNormTests
{
    // Float tiers sum in a different order (and the references in double where ggml does): relative tolerance.
    private const float SumTolerance = 2e-5f;

    public static TheoryData<int> Lengths() => new() { 1, 2, 3, 7, 8, 15, 16, 31, 32, 33, 63, 64, 100, 127, 128, 255, 256 };

    [Theory]
    [MemberData(nameof(Lengths))]
    public void RmsNorm_vector_equals_reference_within_float_rounding(int length)
    {
        float[] x = TestData.Gaussian(length, seed: length, scale: 3f);
        float[] weight = TestData.Gaussian(length, seed: length + 1000);
        var expected = new float[length + 1];
        var actual = new float[length + 1];
        expected[^1] = actual[^1] = 12345f; // guard past the end
        RmsNorm.ComputeReference(x, weight, 1e-5f, expected.AsSpan(0, length));
        RmsNorm.ComputeVector(x, weight, 1e-5f, actual.AsSpan(0, length));
        for (int i = 0; i < length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= SumTolerance * (1 + Math.Abs(expected[i])), $"{i}: {expected[i]} vs {actual[i]}");
        }
        Assert.Equal(12345f, actual[^1]);
    }

    [Fact]
    public void RmsNorm_of_a_zero_row_is_zero_and_an_empty_row_is_refused()
    {
        var y = new float[4];
        RmsNorm.Compute(new float[4], [1, 1, 1, 1], 1e-6f, y);
        Assert.Equal(new float[4], y);
        Assert.Throws<ArgumentException>(() => RmsNorm.Compute([], [], 1e-6f, []));
    }

}
