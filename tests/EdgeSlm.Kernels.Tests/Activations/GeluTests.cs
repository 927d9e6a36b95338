using System.Numerics;
using System.Runtime.Intrinsics;
using EdgeSlm.Kernels.Activations;
using EdgeSlm.Kernels.Dispatch;

namespace EdgeSlm.Kernels.Tests.Activations;

public sealed class GeluTests
{
    public static TheoryData<int> Lengths() => [0, 1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 100, 255, 256, 1536];

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Gelu_vector_tiers_equal_the_reference_within_the_exponential_s_error_and_each_other_bit_for_bit_in_whole_vectors(int length)
    {
        float[] input = TestData.Gaussian(length, seed: 300 + length, scale: 4f);
        input.AsSpan(0, Math.Min(length, 3)).Fill(-11f); // the far tail, where e^-u² underflows toward the clamp
        float[] reference = Run(Gelu.GeluReference, input);
        var tiers = new List<float[]>();
        if (Vector.IsHardwareAccelerated) tiers.Add(Run(Gelu.GeluVector, input));
        if (Vector512.IsHardwareAccelerated) tiers.Add(Run(Gelu.GeluVector512, input));
        foreach (float[] tier in tiers)
        {
            for (int i = 0; i < length; i++)
            {
                Assert.True(Math.Abs(tier[i] - reference[i]) <= Gelu.GeluTolerance * Math.Max(1f, Math.Abs(input[i])),
                    $"GELU({input[i]}) = {tier[i]}, reference {reference[i]}");
            }
        }
        if (tiers.Count == 2)
        {
            // The same formula per lane; they differ only where one tier's scalar tail starts before the other's.
            int bothVector = length / 16 * 16;
            Assert.Equal(tiers[0][..bothVector], tiers[1][..bothVector]);
        }
    }

    [Fact]
    public void Gelu_reference_follows_the_definition_x_times_the_normal_cdf()
    {
        float[] x = [-6f, -3f, -1f, -0.5f, 0f, 0.25f, 1f, 2f, 5f];
        float[] y = Run(Gelu.GeluReference, x);
        for (int i = 0; i < x.Length; i++)
        {
            double exact = x[i] * 0.5 * (1 + Erf(x[i] / Math.Sqrt(2)));
            Assert.True(Math.Abs(y[i] - exact) < 2e-6, $"GELU({x[i]}) = {y[i]}, exact {exact}");
        }
    }

    [Fact]
    public void Reference_float_path_runs_the_reference_tier()
    {
        float[] input = TestData.Gaussian(100, seed: 7, scale: 3f);
        float[] viaPath = (float[])input.Clone();
        Gelu.Apply(viaPath, FloatPath.Reference);
        Assert.Equal(Run(Gelu.GeluReference, input), viaPath);
    }

    private delegate void Tier(Span<float> x);

    private static float[] Run(Tier tier, float[] input)
    {
        // A guard past the end: a tier must not write beyond its span.
        float[] buffer = [.. input, 12345f];
        tier(buffer.AsSpan(0, input.Length));
        Assert.Equal(12345f, buffer[^1]);
        return buffer[..input.Length];
    }

    /// <summary>erf by its series (|x| ≤ 3) or its asymptotic complement, in double: a reference independent of the kernel's approximation.</summary>
    private static double Erf(double x)
    {
        double sign = Math.Sign(x), a = Math.Abs(x);
        if (a > 3) return sign * (1 - Math.Exp(-a * a) / (a * Math.Sqrt(Math.PI)) * (1 - 1 / (2 * a * a) + 3 / (4 * Math.Pow(a, 4))));
        double sum = 0, term = a;
        for (int n = 0; n < 200; n++)
        {
            sum += term / (2 * n + 1);
            term *= -a * a / (n + 1);
        }
        return sign * 2 / Math.Sqrt(Math.PI) * sum;
    }
}
