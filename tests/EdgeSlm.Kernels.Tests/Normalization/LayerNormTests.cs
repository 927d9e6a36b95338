using EdgeSlm.Kernels.Normalization;
using static EdgeSlm.Kernels.Tests.FiniteDifferences;

namespace EdgeSlm.Kernels.Tests.Normalization;

public sealed class LayerNormTests
{
    /// <summary>Float rounding in the forward and backward on rows up to 384: largest error over largest gradient element.</summary>
    private const double GradientTolerance = 1e-4;
    private const float Epsilon = 1e-5f;

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(32)]
    [InlineData(384)]
    public void Layer_norm_backward_equals_central_differences_in_double_for_x_weight_and_bias(int n)
    {
        float[] x = TestData.Gaussian(n, seed: 10 + n, scale: 2f);
        float[] weight = TestData.Gaussian(n, seed: 11 + n);
        float[] bias = TestData.Gaussian(n, seed: 12 + n);
        float[] c = TestData.Gaussian(n, seed: 13 + n);   // the loss is Σ c ⊙ y, so dy = c
        double[] cd = ToDouble(c);

        var normalized = new float[n];
        var y = new float[n];
        float rstd = LayerNorm.Forward(x, weight, bias, Epsilon, normalized, y);
        var dx = new float[n];
        var dWeight = new float[n];
        var dBias = new float[n];
        LayerNorm.Backward(c, normalized, rstd, weight, dx, dWeight, dBias, new float[n]);

        double[] xd = ToDouble(x), wd = ToDouble(weight), bd = ToDouble(bias);
        double[] yd = Forward(xd, wd, bd);
        for (int i = 0; i < n; i++) Assert.True(Math.Abs(y[i] - yd[i]) <= 1e-4 * Math.Max(1, Math.Abs(yd[i])), $"y[{i}] = {y[i]}, double {yd[i]}");
        if (n > 1)
        {
            Assert.True(RelativeError(dx, Gradient(v => Dot(cd, Forward(v, wd, bd)), xd)) <= GradientTolerance, "dx");
        }
        Assert.True(RelativeError(dWeight, Gradient(v => Dot(cd, Forward(xd, v, bd)), wd)) <= GradientTolerance, "dw");
        Assert.True(RelativeError(dBias, Gradient(v => Dot(cd, Forward(xd, wd, v)), bd)) <= GradientTolerance, "db");
    }

    [Fact]
    public void Layer_norm_backward_adds_to_the_weight_and_bias_gradients()
    {
        float[] x = TestData.Gaussian(16, seed: 5), weight = TestData.Gaussian(16, seed: 6), dy = TestData.Gaussian(16, seed: 7);
        var normalized = new float[16];
        float rstd = LayerNorm.Forward(x, weight, new float[16], Epsilon, normalized, new float[16]);
        float[] dWeight = Enumerable.Repeat(1f, 16).ToArray(), dBias = Enumerable.Repeat(2f, 16).ToArray();
        LayerNorm.Backward(dy, normalized, rstd, weight, new float[16], dWeight, dBias, new float[16]);
        for (int i = 0; i < 16; i++)
        {
            Assert.Equal(1f + dy[i] * normalized[i], dWeight[i], 1e-6f);
            Assert.Equal(2f + dy[i], dBias[i], 1e-6f);
        }
    }

    private static double[] Forward(double[] x, double[] weight, double[] bias)
    {
        double mean = x.Average();
        double variance = x.Select(v => (v - mean) * (v - mean)).Average();
        double rstd = 1 / Math.Sqrt(variance + Epsilon);
        return x.Select((v, i) => (v - mean) * rstd * weight[i] + bias[i]).ToArray();
    }
}
