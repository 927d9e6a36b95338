using System.Diagnostics;
using System.Globalization;
using System.Text;
using EdgeSlm.Kernels.Conversion;
using EdgeSlm.Kernels.Quantization;
using EdgeSlm.Models.Gguf;
using EdgeSlm.Models.Llama;
using EdgeSlm.Models.Tokenizers;

namespace EdgeSlm.EdgeModule.Cli;

/// <summary><c>edgeslm generate</c>: a llama / qwen2 decoder continues a text; <c>edgeslm info</c> describes decoders.</summary>
internal static class GenerateCommand
{
    public const string Usage =
        """
          edgeslm generate --model FILE [--chat] [--max-tokens N] [--temperature T] [--top-k K] [--top-p P]
                           [--seed S] [--threads N] [--context N] [--ignore-eos] TEXT...
                                    a llama/qwen2 GGUF decoder continues TEXT (--chat: answers it as a user turn
                                    through the file's chat template, ChatML or Llama 3): only the reply on stdout,
                                    streamed; prompt and generation tokens/s on stderr
        """;

    public static int Run(Arguments args, TextWriter output, TextWriter error)
    {
        string path = args.RequiredOption("model");
        int maxTokens = args.IntOption("max-tokens", 128, 0, 1 << 20);
        float temperature = FloatOption(args, "temperature", 0f);
        int topK = args.IntOption("top-k", 0, 0, int.MaxValue);
        float topP = FloatOption(args, "top-p", 1f);
        if (!(topP > 0 && topP <= 1))
        {
            throw new UsageException($"--top-p must be a probability above 0 and at most 1, not {topP}");
        }
        int seed = args.IntOption("seed", 0, int.MinValue, int.MaxValue);
        int threads = args.IntOption("threads", 1, 1, 64);
        int context = args.IntOption("context", 2048, 1, 1 << 20);
        bool ignoreEos = args.Flag("ignore-eos");
        bool chat = args.Flag("chat");
        args.RejectUnknown();
        string text = string.Join(' ', args.Positional);
        if (text.Length == 0)
        {
            throw new UsageException("generate: give the text to continue");
        }

        using LlamaModel model = LlamaModel.Load(path);
        if (model.Weights.ConvertedBytes > 0)
        {
            int count = model.Weights.Matrices.Count(m => m.Converted);
            error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"converted {count} matrices to native types at load: {model.Weights.ConvertedBytes / 1e6:F1} MB, {model.Weights.ConversionTime.TotalMilliseconds:F0} ms"));
        }
        DecoderTokenizer tokenizer = model.CreateTokenizer();
        if (chat)
        {
            string? jinja = model.File.Get(ChatTemplate.MetadataKey)?.Value as string;
            ChatTemplate? template = ChatTemplate.Recognise(jinja);
            if (template is null)
            {
                error.WriteLine(jinja is null
                    ? $"generate: {path} has no '{ChatTemplate.MetadataKey}'; the text goes in raw"
                    : $"generate: the chat template of {path} is not one EdgeSlm knows (ChatML, Llama 3); the text goes in raw");
            }
            else
            {
                text = template.Format([("user", text)]);
            }
        }
        int[] prompt = tokenizer.Encode(text, addSpecial: true, parseSpecial: true);
        if (prompt.Length == 0)
        {
            throw new UsageException("generate: the text gives no tokens");
        }
        if (prompt.Length >= context)
        {
            throw new UsageException($"generate: the prompt has {prompt.Length} tokens; --context {context} leaves no room to generate");
        }
        using var decoder = new LlamaDecoder(model, context, threads);
        var sampler = new TokenSampler(model.Config.VocabularySize, temperature, seed, topK, topP);
        var logits = new float[model.Config.VocabularySize];
        var bytes = new byte[Enumerable.Range(0, tokenizer.VocabularySize).Max(tokenizer.MaxBytes)];
        var chars = new char[bytes.Length + 2];
        Decoder utf8 = new UTF8Encoding(false).GetDecoder();

        long start = Stopwatch.GetTimestamp();
        decoder.Prefill(prompt, logits);
        double promptSeconds = Stopwatch.GetElapsedTime(start).TotalSeconds;

        start = Stopwatch.GetTimestamp();
        int generated = 0;
        int decoded = 0;
        while (generated < maxTokens)
        {
            int next = sampler.Next(logits);
            if (!ignoreEos && tokenizer.IsEndOfGeneration(next))
            {
                break;
            }
            int n = tokenizer.TokenBytes(next, bytes);
            int c = utf8.GetChars(bytes, 0, n, chars, 0, flush: false);
            output.Write(chars, 0, c);
            output.Flush();
            generated++;
            if (generated == maxTokens || decoder.Position == decoder.Context)
            {
                break;
            }
            decoder.Decode(next, logits);
            decoded++;
        }
        int tail = utf8.GetChars([], 0, 0, chars, 0, flush: true);
        output.Write(chars, 0, tail);
        output.WriteLine();
        double generationSeconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
        error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"prompt: {prompt.Length} tokens, {prompt.Length / promptSeconds:F1} tokens/s; generation: {generated} tokens, {(decoded > 0 ? decoded / generationSeconds : 0):F1} tokens/s ({decoder.Path.ToString().ToLowerInvariant()}, {threads} thread{(threads == 1 ? "" : "s")})"));
        return CommandLine.ExitOk;
    }

    /// <summary><c>info FILE</c>: a summary of a decoder first (architecture, sizes, types, tokenizer), then the file itself.</summary>
    public static int Info(string path, TextWriter output)
    {
        using (GgufFile file = GgufFile.Open(path))
        {
            string? architecture = file.Get(LlamaGguf.ArchitectureKey)?.Value as string;
            if (architecture is not null && LlamaArchitecture.Find(architecture) is not null)
            {
                LlamaConfig c = LlamaConfig.Read(file);
                long parameters = file.Tensors.Sum(t => t.ElementCount);
                var types = file.Tensors.Where(t => t.Dimensions.Length == 2).GroupBy(t => t.Type)
                    .Select(g => $"{QuantTypeTraits.Of(g.Key).Name} {g.Count()}");
                output.WriteLine($"decoder: {architecture}, {parameters / 1e6:F1} M parameters, {c.LayerCount} layers, hidden {c.HiddenSize}, {c.HeadCount} heads / {c.KvHeadCount} KV heads of {c.HeadSize}, feed-forward {c.FeedForwardSize}");
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"decoder: vocabulary {c.VocabularySize}, context {c.ContextLength}, RoPE base {c.RopeBase} ({c.Architecture.Rope}), RMS epsilon {c.RmsEpsilon}, QKV bias {(c.Architecture.QkvBias ? "yes" : "no")}, output {(c.TiedOutput ? "tied to the token embedding" : "its own matrix")}"));
                output.WriteLine($"decoder: matrices {string.Join(", ", types)}");
                output.WriteLine($"decoder: {ConversionSummary(file, c)}");
                string model = file.Get(DecoderTokenizer.ModelKey)?.Value as string ?? "none";
                string pre = file.Get(DecoderTokenizer.PreKey)?.Value as string ?? "default";
                string? jinja = file.Get(ChatTemplate.MetadataKey)?.Value as string;
                string template = jinja is null ? "none" : ChatTemplate.Recognise(jinja)?.Name ?? "not recognised (raw prompts)";
                string tokenizer = model == "llama"
                    ? $"llama (SentencePiece with byte fallback, space prefix {((file.Get(DecoderTokenizer.AddSpacePrefixKey)?.Value as bool?) ?? true ? "yes" : "no")})"
                    : $"{model} (pre-tokenizer {pre})";
                output.WriteLine($"decoder: tokenizer {tokenizer}, chat template {template}");
            }
        }
        return ModelCommands.Info(path, output);
    }

    /// <summary>Which matrices the loader converts, to what, and the memory that takes beside the mapped file.</summary>
    private static string ConversionSummary(GgufFile file, LlamaConfig config)
    {
        var converted = file.Tensors.Where(t => t.Dimensions.Length == 2)
            .Select(t => (Tensor: t, To: LlamaWeights.LoadedType(t.Name, t.Type, config.TiedOutput)))
            .Where(x => x.To != x.Tensor.Type)
            .ToList();
        var kept = file.Tensors.Where(t => t.Name == LlamaGguf.TokenEmbedding && !QuantTypeTraits.Of(t.Type).IsNative && !config.TiedOutput)
            .Select(t => $"; {t.Name} stays {QuantTypeTraits.Of(t.Type).Name} (rows dequantized at lookup)");
        if (converted.Count == 0)
        {
            return $"no matrix converted at load (all are multiplied as stored){string.Concat(kept)}";
        }
        var groups = converted.GroupBy(x => (x.Tensor.Type, x.To)).Select(g =>
            $"{QuantTypeTraits.Of(g.Key.Type).Name} -> {QuantTypeTraits.Of(g.Key.To).Name} {g.Count()} ({string.Join(", ", ShortNames(g.Select(x => x.Tensor.Name)))})");
        long bytes = converted.Sum(x => LoadConversion.ConvertedRowBytes(x.Tensor.Type, x.Tensor.Columns) * x.Tensor.Rows);
        long stored = converted.Sum(x => x.Tensor.ByteSize);
        return string.Create(CultureInfo.InvariantCulture,
            $"converted at load: {string.Join("; ", groups)}; {bytes / 1e6:F1} MB of memory beside the file's {stored / 1e6:F1} MB{string.Concat(kept)}");
    }

    /// <summary>Tensor names without the block number, each once: "blk.N.ffn_down.weight" for every layer is "ffn_down".</summary>
    private static IEnumerable<string> ShortNames(IEnumerable<string> names) =>
        names.Select(n => n.StartsWith("blk.", StringComparison.Ordinal) ? n[(n.IndexOf('.', 4) + 1)..] : n)
            .Select(n => n.EndsWith(".weight", StringComparison.Ordinal) ? n[..^7] : n)
            .GroupBy(n => n).Select(g => g.Count() > 1 ? $"{g.Key} x{g.Count()}" : g.Key);

    private static float FloatOption(Arguments args, string name, float fallback)
    {
        string? text = args.Option(name);
        if (text is null)
        {
            return fallback;
        }
        return float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float value) && value >= 0 && float.IsFinite(value)
            ? value
            : throw new UsageException($"--{name} must be a number of 0 or more, not '{text}'");
    }
}
