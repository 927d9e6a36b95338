using EdgeSlm.Kernels.Positional;

namespace EdgeSlm.Kernels.Tests.Positional;

public sealed class RopeTests
{
    [Theory]
    [InlineData(RopeLayout.Interleaved, 2)]
    [InlineData(RopeLayout.Interleaved, 6)]
    [InlineData(RopeLayout.Interleaved, 16)]
    [InlineData(RopeLayout.Interleaved, 64)]
    [InlineData(RopeLayout.Interleaved, 128)]
    [InlineData(RopeLayout.Halves, 2)]
    [InlineData(RopeLayout.Halves, 6)]
    [InlineData(RopeLayout.Halves, 10)]
    [InlineData(RopeLayout.Halves, 64)]
    [InlineData(RopeLayout.Halves, 128)]
    public void Rope_vector_is_bit_exact_with_the_reference(RopeLayout layout, int headSize)
    {
        var table = new RopeTable(layout, headSize, positions: 300, frequencyBase: 10000f);
        foreach (int position in new[] { 0, 1, 17, 299 })
        {
            float[] heads = TestData.Gaussian(3 * headSize, seed: position + headSize);
            float[] expected = (float[])heads.Clone();
            table.ApplyReference(expected, position);
            table.ApplyVector(heads, position);
            Assert.Equal(expected, heads);
        }
    }

    [Fact]
    public void Rope_rotates_the_pairs_each_layout_names_by_position_times_frequency()
    {
        const int d = 8;
        var interleaved = new RopeTable(RopeLayout.Interleaved, d, 8, 10000f);
        var halves = new RopeTable(RopeLayout.Halves, d, 8, 10000f);
        // Pair 1 (frequency 10000^(-2/8) = 0.1) at position 3: angle 0.3.
        float[] x = new float[d];
        x[2] = 1f; // interleaved pair 1 = dims (2, 3)
        interleaved.ApplyReference(x, 3);
        Assert.Equal(MathF.Cos(0.3f), x[2], 1e-6f);
        Assert.Equal(MathF.Sin(0.3f), x[3], 1e-6f);
        float[] y = new float[d];
        y[1] = 1f; // halves pair 1 = dims (1, 5)
        halves.ApplyReference(y, 3);
        Assert.Equal(MathF.Cos(0.3f), y[1], 1e-6f);
        Assert.Equal(MathF.Sin(0.3f), y[5], 1e-6f);
        Assert.Throws<ArgumentOutOfRangeException>(() => halves.Apply(y, 8));
    }
}
