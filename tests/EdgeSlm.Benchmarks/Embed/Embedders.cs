using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Conversion;
using EdgeSlm.Models.Tokenizers;
using LLama.Common;
using LLama.Native;
using LLama;
using Microsoft.ML.OnnxRuntime.Tensors;
using Microsoft.ML.OnnxRuntime;

namespace EdgeSlm.Benchmarks.Embed;

/// <summary>One engine that turns an utterance into a pooled embedding (the benchmark's seam between peers).</summary>
internal interface IEmbedder : IDisposable
{
    void Embed(string text);
    int TokenCount(string text);
}

internal sealed class EdgeSlmEmbedder : IEmbedder
{
    private readonly BertModel _model;
    private readonly WordPieceTokenizer _tokenizer;
    private readonly BertEncoder _encoder;
    private readonly float[] _embedding;
    private readonly int[] _length = new int[1];

    /// <param name="choose">Measure and keep the threads per input length, as the module does at start; false: every pass on all threads.</param>
    public EdgeSlmEmbedder(string modelPath, int threads, bool choose)
    {
        _model = BertModel.Load(modelPath);
        _tokenizer = new WordPieceTokenizer(_model.Vocabulary, _model.Config.ContextLength);
        _encoder = new BertEncoder(_model, threads);
        _embedding = new float[_model.Config.HiddenSize];
        if (choose)
        {
            EncoderThreadPlan plan = EncoderThreadPlan.Measure(_encoder);
            _encoder.ThreadPlan = plan;
            ChosenPlan = $"{plan}; medians {plan.DescribeTimings()}";
        }
    }

    /// <summary>The plan chosen at load and the timings it came from; null when not choosing.</summary>
    public string? ChosenPlan { get; }

    public void Embed(string text)
    {
        int[] ids = _tokenizer.Encode(text);
        _length[0] = ids.Length;
        _encoder.Encode(ids, _length, _embedding);
    }

    public int TokenCount(string text) => _tokenizer.Encode(text).Length;

    public void Dispose()
    {
        _encoder.Dispose();
        _model.Dispose();
    }
}

/// <summary>ONNX Runtime on the bundled fp32 ONNX, fed the same token ids as EdgeSlm.</summary>
internal sealed class OnnxRuntimeEmbedder : IEmbedder
{
    private readonly InferenceSession _session;
    private readonly WordPieceTokenizer _tokenizer;

    public OnnxRuntimeEmbedder(int threads)
    {
        var options = new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        _session = new InferenceSession(BundledModel.MiniLM.ReadOnnx(), options);
        _tokenizer = new WordPieceTokenizer(BundledModel.MiniLM.ReadVocabulary(), 512);
    }

    public void Embed(string text)
    {
        int[] ids = _tokenizer.Encode(text);
        int n = ids.Length;
        var inputIds = new DenseTensor<long>(ids.Select(i => (long)i).ToArray(), [1, n]);
        var mask = new DenseTensor<long>(Enumerable.Repeat(1L, n).ToArray(), [1, n]);
        var types = new DenseTensor<long>(new long[n], [1, n]);
        using var results = _session.Run(
        [
            NamedOnnxValue.CreateFromTensor("input_ids", inputIds),
            NamedOnnxValue.CreateFromTensor("attention_mask", mask),
            NamedOnnxValue.CreateFromTensor("token_type_ids", types),
        ]);
        // Mean pooling and normalisation, as the model defines them.
        Tensor<float> hidden = results.First(r => r.Name == "last_hidden_state").AsTensor<float>();
        var pooled = new float[hidden.Dimensions[2]];
        for (int t = 0; t < n; t++)
            for (int i = 0; i < pooled.Length; i++) pooled[i] += hidden[0, t, i];
        System.Numerics.Tensors.TensorPrimitives.Divide(pooled, System.Numerics.Tensors.TensorPrimitives.Norm(pooled), pooled);
    }

    public int TokenCount(string text) => _tokenizer.Encode(text).Length;

    public void Dispose() => _session.Dispose();
}

/// <summary>llama.cpp (LLamaSharp's CPU backend) on the same GGUF file, mean pooling.</summary>
internal sealed class LlamaCppEmbedder : IEmbedder
{
    private readonly LLamaWeights _weights;
    private readonly LLamaEmbedder _embedder;

    public LlamaCppEmbedder(string modelPath, int threads)
    {
        NativeLibraryConfig.All.WithLogCallback((level, message) => { if (level == LLamaLogLevel.Error) Console.Error.Write(message); });
        var parameters = new ModelParams(modelPath)
        {
            Embeddings = true,
            PoolingType = LLamaPoolingType.Mean,
            ContextSize = 512,
            BatchSize = 512,
            UBatchSize = 512,
            Threads = threads,
            BatchThreads = threads,
            GpuLayerCount = 0,
        };
        _weights = LLamaWeights.LoadFromFile(parameters);
        _embedder = new LLamaEmbedder(_weights, parameters);
    }

    public void Embed(string text) => _embedder.GetEmbeddings(text).GetAwaiter().GetResult();

    public int TokenCount(string text) => _weights.Tokenize(text, true, false, System.Text.Encoding.UTF8).Length;

    public void Dispose()
    {
        _embedder.Dispose();
        _weights.Dispose();
    }
}
