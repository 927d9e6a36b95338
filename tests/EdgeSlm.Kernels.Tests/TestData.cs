namespace EdgeSlm.Kernels.Tests;

/// <summary>Deterministic inputs: fixed seeds, values of a realistic spread and of extreme magnitudes.</summary>
internal static class TestData
{
    public static float[] Gaussian(int count, int seed, float scale = 1f)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            // Box-Muller: weights and activations are roughly normal.
            double u1 = 1.0 - random.NextDouble();
            double u2 = random.NextDouble();
            values[i] = (float)(Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2)) * scale;
        }
        return values;
    }

    /// <summary>Blocks of very different magnitudes, all-zero blocks, lone outliers and both signs of the maximum.</summary>
    public static float[] Mixed(int count, int seed)
    {
        var random = new Random(seed);
        float[] values = Gaussian(count, seed);
        for (int b = 0; b < count / 32; b++)
        {
            Span<float> block = values.AsSpan(b * 32, 32);
            switch (random.Next(6))
            {
                case 0: block.Clear(); break;
                case 1: foreach (ref float v in block) v *= 1e-6f; break;
                case 2: foreach (ref float v in block) v *= 3e4f; break;
                case 3: block[random.Next(32)] = -50f; break;
                case 4: block[random.Next(32)] = 50f; break;
                default: break;
            }
        }
        return values;
    }
}
