using EdgeSlm.Kernels.Activations;

namespace EdgeSlm.Kernels.Tests.Activations;

public sealed class GeluBackwardTests
{
    /// <summary>
    /// The backward takes Φ from the forward's erfc approximation (absolute error 1.5e-7) and rounds in float: against
    /// the exact derivative, the error is within this times max(1, |x|) times |dy|.
    /// </summary>
    private const double Tolerance = 2e-6;

    [Theory]
    [InlineData(1)]
    [InlineData(17)]
    [InlineData(256)]
    public void Gelu_backward_equals_central_differences_of_the_exact_erf_gelu_in_double(int length)
    {
        float[] x = TestData.Gaussian(length, seed: 900 + length, scale: 3f);
        x[0] = length == 1 ? 0f : -7f;
        float[] dy = TestData.Gaussian(length, seed: 901 + length);
        var dx = new float[length];
        Gelu.BackwardReference(x, dy, dx);
        for (int i = 0; i < length; i++)
        {
            double h = 1e-5, numeric = (ExactGelu(x[i] + h) - ExactGelu(x[i] - h)) / (2 * h) * dy[i];
            Assert.True(Math.Abs(dx[i] - numeric) <= Tolerance * Math.Max(1, Math.Abs(x[i])) * Math.Max(1, Math.Abs(dy[i])),
                $"GELU'({x[i]})·{dy[i]} = {dx[i]}, finite differences {numeric}");
        }
    }

    [Fact]
    public void Gelu_backward_refuses_spans_of_different_lengths() =>
        Assert.Throws<ArgumentException>(() => Gelu.BackwardReference(new float[3], new float[2], new float[3]));

    private static double ExactGelu(double x) => 0.5 * x * (1 + Erf(x / Math.Sqrt(2)));

    /// <summary>erf from its Maclaurin series near 0 and the continued fraction of erfc further out (double precision).</summary>
    private static double Erf(double x)
    {
        double a = Math.Abs(x), result;
        if (a < 3)
        {
            double term = a, sum = a;
            for (int n = 1; n < 200 && Math.Abs(term) > 1e-18 * Math.Abs(sum); n++)
            {
                term *= -a * a / n;
                sum += term / (2 * n + 1);
            }
            result = 2 / Math.Sqrt(Math.PI) * sum;
        }
        else
        {
            double fraction = a;
            for (int k = 80; k >= 1; k--) fraction = a + k / 2.0 / fraction;
            result = 1 - Math.Exp(-a * a) / Math.Sqrt(Math.PI) / fraction;
        }
        return x < 0 ? -result : result;
    }
}
