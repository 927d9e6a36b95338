using System.Runtime.InteropServices;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Conversion;

namespace EdgeSlm.Models.Tests.Conversion;

public sealed class GptqQuantizerTests
{
    private const int Rows = 48, Columns = 128, Tokens = 600;

    [Fact]
    public void Gptq_changes_the_layer_output_less_than_rounding_to_nearest()
    {
        var random = new Random(7);
        float[] weights = Gaussian(random, Rows * Columns);
        float[] inputs = CorrelatedInputs(random);
        float[] gram = Gram(inputs);

        double roundToNearest = OutputError(weights, Dequantize(Reference(weights)), inputs);
        double gptq = OutputError(weights, Dequantize(GptqQuantizer.QuantizeQ4_0(weights, Rows, Columns, gram)), inputs);

        // On correlated inputs GPTQ's error compensation typically halves the output error or better.
        Assert.True(gptq < 0.6 * roundToNearest, $"GPTQ output error {gptq:G4} against {roundToNearest:G4} rounded to nearest");
    }

    [Fact]
    public void A_gram_matrix_of_zeros_still_gives_valid_blocks_no_worse_than_rounding_to_nearest()
    {
        // Columns calibration never saw active: no information, so GPTQ degenerates to per-block least squares.
        var random = new Random(11);
        float[] weights = Gaussian(random, Rows * Columns);
        float[] quantized = Dequantize(GptqQuantizer.QuantizeQ4_0(weights, Rows, Columns, new float[Columns * Columns]));
        float[] reference = Dequantize(Reference(weights));

        Assert.All(quantized, v => Assert.True(float.IsFinite(v)));
        Assert.True(SquaredError(weights, quantized) <= SquaredError(weights, reference) * 1.0001,
            $"{SquaredError(weights, quantized):G6} > {SquaredError(weights, reference):G6}");
    }

    [Fact]
    public void Block_scale_is_never_worse_than_mapping_the_largest_weight_to_minus_eight()
    {
        var random = new Random(3);
        for (int trial = 0; trial < 500; trial++)
        {
            float[] x = Gaussian(random, BlockQ4_0.Elements);
            if (trial % 5 == 0) x[random.Next(x.Length)] *= 20f; // an outlier in the block
            float[] importance = Enumerable.Range(0, x.Length).Select(_ => (float)Math.Exp(2 * random.NextDouble())).ToArray();
            Half chosen = GptqQuantizer.BlockScale(x, importance);
            float largest = x.MaxBy(MathF.Abs);
            Assert.True(WeightedError(x, importance, (float)chosen) <= WeightedError(x, importance, (float)(Half)(largest / -8f)) + 1e-9,
                $"trial {trial}: scale {chosen} is worse than {largest / -8f}");
        }
    }

    [Fact]
    public void Shapes_that_are_not_whole_blocks_are_refused()
    {
        Assert.Throws<ArgumentException>(() => GptqQuantizer.QuantizeQ4_0(new float[4 * 40], 4, 40, new float[40 * 40]));
        Assert.Throws<ArgumentException>(() => GptqQuantizer.QuantizeQ4_0(new float[4 * 32], 4, 32, new float[31 * 31]));
    }

    private static float[] Gaussian(Random random, int count) =>
        Enumerable.Range(0, count).Select(_ => (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()))).ToArray();

    // Inputs that mix a few shared factors into every column, as hidden states do, plus a few large columns.
    private static float[] CorrelatedInputs(Random random)
    {
        const int Factors = 8;
        float[] mixing = Gaussian(random, Factors * Columns);
        var inputs = new float[Tokens * Columns];
        for (int t = 0; t < Tokens; t++)
        {
            float[] factors = Gaussian(random, Factors);
            float[] noise = Gaussian(random, Columns);
            for (int c = 0; c < Columns; c++)
            {
                float value = 0.3f * noise[c];
                for (int f = 0; f < Factors; f++) value += factors[f] * mixing[f * Columns + c];
                inputs[t * Columns + c] = c % 37 == 0 ? 5 * value : value;
            }
        }
        return inputs;
    }

    private static float[] Gram(float[] inputs)
    {
        var gram = new float[Columns * Columns];
        for (int t = 0; t < Tokens; t++)
            for (int a = 0; a < Columns; a++)
                for (int b = 0; b < Columns; b++)
                    gram[a * Columns + b] += inputs[t * Columns + a] * inputs[t * Columns + b];
        return gram;
    }

    private static double OutputError(float[] weights, float[] quantized, float[] inputs)
    {
        double error = 0;
        for (int t = 0; t < Tokens; t++)
        {
            for (int r = 0; r < Rows; r++)
            {
                double difference = 0;
                for (int c = 0; c < Columns; c++) difference += (weights[r * Columns + c] - quantized[r * Columns + c]) * (double)inputs[t * Columns + c];
                error += difference * difference;
            }
        }
        return error;
    }

    private static double SquaredError(float[] a, float[] b) => a.Zip(b, (x, y) => (double)(x - y) * (x - y)).Sum();

    private static double WeightedError(float[] x, float[] weights, float scale)
    {
        double error = 0;
        for (int j = 0; j < x.Length; j++)
        {
            int q = scale == 0 ? 0 : Math.Clamp((int)MathF.Round(x[j] / scale), -8, 7);
            double e = x[j] - scale * q;
            error += weights[j] * e * e;
        }
        return error;
    }

    private static byte[] Reference(float[] weights)
    {
        var bytes = new byte[weights.Length / BlockQ4_0.Elements * BlockQ4_0.Bytes];
        ReferenceQuantizer.Quantize(QuantType.Q4_0, weights, bytes);
        return bytes;
    }

    private static float[] Dequantize(byte[] bytes)
    {
        var values = new float[bytes.Length / BlockQ4_0.Bytes * BlockQ4_0.Elements];
        ReferenceQuantizer.Dequantize(QuantType.Q4_0, bytes, values);
        Assert.Equal(bytes.Length / BlockQ4_0.Bytes, MemoryMarshal.Cast<byte, BlockQ4_0>(bytes.AsSpan()).Length);
        return values;
    }
}
