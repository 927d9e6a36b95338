using EdgeSlm.Kernels.Dispatch;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.MatMul;
using EdgeSlm.Kernels.Quantization;

namespace EdgeSlm.Benchmarks.Kernels;

/// <summary>
/// Runs every kernel path this CPU supports once, for Q4_0 and Q8_0 weights and for 1 and 4 tokens, so that
/// the JIT compiles each tile kernel: with DOTNET_JitDisasm set, its machine code is printed
/// (neon-instructions.sh counts the inner loops from that listing).
/// </summary>
internal static class JitKernels
{
    public static int Run()
    {
        var random = new Random(1);
        float[] weights = Enumerable.Range(0, 16 * 256).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
        float[] x = Enumerable.Range(0, 4 * 256).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
        var y = new float[4 * 16];
        foreach (QuantType type in new[] { QuantType.Q4_0, QuantType.Q8_0 })
        {
            using var matrix = QuantizedMatrix.Quantize(type, weights, 16, 256);
            foreach (KernelPath path in KernelPaths.Supported)
            {
                using var matMul = new QuantMatMul(1, path);
                matMul.Multiply(matrix, x, 4, y);
                matMul.Multiply(matrix, x.AsSpan(0, 256), 1, y.AsSpan(0, 16));
                Console.WriteLine($"{QuantTypeTraits.Of(type).Name} {KernelPaths.Name(path)}: y[0] = {y[0]}");
            }
        }
        return 0;
    }
}
