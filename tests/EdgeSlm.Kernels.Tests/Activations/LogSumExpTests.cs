using EdgeSlm.Kernels.Activations;

namespace EdgeSlm.Kernels.Tests.Activations;

public sealed class LogSumExpTests
{
    // The vector form sums chunks of 1024 exponentials in float and the chunks in double: a few 1e-7 in the log.
    private const double Tolerance = 2e-6;

    public static TheoryData<int> Lengths() => new() { 1, 2, 7, 16, 33, 100, 1000, 49_152, 151_936 };

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Vector_equals_the_double_reference_for_logit_rows(int length)
    {
        // Logits as a language model gives them: a spread of about ±10 around an offset, one clear winner.
        float[] logits = TestData.Gaussian(length, seed: length, scale: 4f);
        for (int i = 0; i < length; i++) logits[i] += 30f;
        logits[length / 2] += 12f;
        double expected = LogSumExp.ComputeReference(logits);
        double separate = LogSumExp.Compute(logits, new float[length]);
        float[] inPlace = (float[])logits.Clone();
        double overwritten = LogSumExp.Compute(inPlace, inPlace);
        Assert.True(Math.Abs(expected - separate) <= Tolerance, $"{expected} vs {separate}");
        Assert.Equal(separate, overwritten);
    }

    [Fact]
    public void Large_logits_do_not_overflow_and_a_single_value_is_its_own_normaliser()
    {
        float[] huge = [1000f, 999f, -1000f];
        double expected = 1000 + Math.Log(1 + Math.Exp(-1));
        Assert.True(Math.Abs(LogSumExp.Compute(huge, new float[3]) - expected) <= Tolerance);
        Assert.True(Math.Abs(LogSumExp.ComputeReference(huge) - expected) <= 1e-9);
        Assert.Equal(-3.5, LogSumExp.Compute([-3.5f], new float[1]), 6);
    }
}
