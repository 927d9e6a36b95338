using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Conversion;
using Microsoft.ML.OnnxRuntime.Tensors;
using Microsoft.ML.OnnxRuntime;

namespace EdgeSlm.Testing;

/// <summary>ONNX Runtime, fp32, on the same ONNX file: the reference our embeddings are compared with.</summary>
public sealed class OnnxRuntimeReference : IDisposable
{
    private readonly InferenceSession _session;
    private readonly Pooling _pooling;

    public OnnxRuntimeReference(BundledModel model)
    {
        var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
        _session = new InferenceSession(model.ReadOnnx(), options);
        _pooling = model.Pooling;
    }

    public float[] Encode(int[] ids)
    {
        int n = ids.Length;
        var inputIds = new DenseTensor<long>(ids.Select(i => (long)i).ToArray(), [1, n]);
        var mask = new DenseTensor<long>(Enumerable.Repeat(1L, n).ToArray(), [1, n]);
        var types = new DenseTensor<long>(new long[n], [1, n]);
        using IDisposableReadOnlyCollection<DisposableNamedOnnxValue> results = _session.Run(
        [
            NamedOnnxValue.CreateFromTensor("input_ids", inputIds),
            NamedOnnxValue.CreateFromTensor("attention_mask", mask),
            NamedOnnxValue.CreateFromTensor("token_type_ids", types),
        ]);
        Tensor<float> hidden = results.First(r => r.Name == "last_hidden_state").AsTensor<float>();
        int size = hidden.Dimensions[2];
        var pooled = new double[size];
        for (int t = 0; t < (_pooling == Pooling.Cls ? 1 : n); t++)
        {
            for (int i = 0; i < size; i++) pooled[i] += hidden[0, t, i];
        }
        double norm = Math.Sqrt(pooled.Sum(v => v * v));
        return pooled.Select(v => (float)(v / norm)).ToArray();
    }

    public void Dispose() => _session.Dispose();
}
