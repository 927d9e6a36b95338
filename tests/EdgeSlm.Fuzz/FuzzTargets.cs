using System.Buffers;
using System.Globalization;
using System.Text;
using EdgeSlm.EdgeModule.Azure;
using EdgeSlm.EdgeModule.Inference;
using EdgeSlm.EdgeModule.Messaging;
using EdgeSlm.EdgeModule.Protocols;
using EdgeSlm.EdgeModule.Wyoming;
using EdgeSlm.Intents.Definitions;
using EdgeSlm.Intents.Examples;
using EdgeSlm.Intents.Recognition;
using EdgeSlm.Intents.Slots;
using EdgeSlm.Intents.Templates;
using EdgeSlm.Models.Bert;
using EdgeSlm.Models.Gguf;
using EdgeSlm.Models.Llama;
using EdgeSlm.Models.Onnx;
using EdgeSlm.Models.Tokenizers;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeSlm.Fuzz;

/// <summary>How a parser took one input: it was read, or refused with its documented, typed error.</summary>
public readonly record struct FuzzOutcome(bool Accepted, string Detail)
{
    public static FuzzOutcome Read(string detail) => new(true, detail);

    public static FuzzOutcome Refused(Exception typed) => new(false, $"{typed.GetType().Name}: {typed.Message}");
}

/// <summary>
/// The fuzz targets: each hands one input to the parser the module uses on outside data, the way the module does,
/// and then uses what came out as the module would (writes the answer, expands and matches the templates). The
/// parser's documented rejection is caught and returned; any other exception escapes, and the fuzzer (or the corpus
/// replay test) reports it as a crash. Shared by the fuzzing executable and EdgeSlm.EdgeModule.Tests.
/// </summary>
public static class FuzzTargets
{
    /// <summary>
    /// Every target; CI fuzzes each for the same time and the replay test reads each one's corpus folder. A new
    /// parser of outside data goes here and in <see cref="Run"/>, with a seed corpus in corpus/&lt;name&gt;/.
    /// </summary>
    public static IReadOnlyList<string> Names { get; } = ["gguf", "gguf-decoder", "onnx", "intents-yaml", "template", "hermes", "native", "azure-twin", "azure-method", "wyoming-event"];

    // What the module itself uses: MaxPayloadBytes' default, the engine's expansion settings.
    private const int MaxPayloadBytes = 8192;
    private const int ExamplesPerTemplate = 20;
    private const int ExpansionSeed = 20241126;
    private const int MatchedSentences = 8;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <exception cref="ArgumentException">No target is called <paramref name="target"/>.</exception>
    public static FuzzOutcome Run(string target, byte[] input) => target switch
    {
        "gguf" => Gguf(input),
        "gguf-decoder" => GgufDecoder(input),
        "onnx" => Onnx(input),
        "intents-yaml" => IntentsYaml(input),
        "template" => Template(input),
        "hermes" => Hermes(input),
        "native" => Native(input),
        "azure-twin" => AzureTwin(input),
        "azure-method" => AzureMethod(input),
        "wyoming-event" => WyomingEvents(input),
        _ => throw new ArgumentException($"no fuzz target '{target}' (targets: {string.Join(", ", Names)})", nameof(target)),
    };

    /// <summary>A decoder file: the llama/qwen2 loader, the tokenizer from its metadata (byte-level BPE or SentencePiece), one forward pass.</summary>
    private static FuzzOutcome GgufDecoder(byte[] input)
    {
        string directory = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        string path = Path.Combine(directory, $"edgeslm-fuzz-decoder-{Environment.ProcessId}-{Environment.CurrentManagedThreadId}.gguf");
        File.WriteAllBytes(path, input);
        try
        {
            using Models.Llama.LlamaModel model = Models.Llama.LlamaModel.Load(path);
            var tokenizer = model.CreateTokenizer();
            int[] ids = tokenizer.Encode("Turn on the lights, 42 caf\u00e9 \U0001F600 <|endoftext|>", addSpecial: true, parseSpecial: true);
            _ = tokenizer.Decode(ids);
            using var decoder = new Models.Llama.LlamaDecoder(model, context: 4, batchSize: 2);
            var logits = new float[model.Config.VocabularySize];
            decoder.Prefill([0, model.Config.VocabularySize - 1], logits);
            return FuzzOutcome.Read($"{model.Config.Architecture.Name} decoder, {model.Config.LayerCount} layers, {tokenizer.VocabularySize} tokens, {ids.Length} ids");
        }
        catch (GgufFormatException e)
        {
            return FuzzOutcome.Refused(e);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>GgufFile maps a path, so the input goes to a file (in RAM where /dev/shm exists); then the BERT loader reads it.</summary>
    private static FuzzOutcome Gguf(byte[] input)
    {
        string directory = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        string path = Path.Combine(directory, $"edgeslm-fuzz-{Environment.ProcessId}-{Environment.CurrentManagedThreadId}.gguf");
        File.WriteAllBytes(path, input);
        try
        {
            int tensorBytes = 0;
            using (GgufFile file = GgufFile.Open(path))
            {
                foreach (GgufValue value in file.Metadata.Values)
                {
                    _ = value.Display();
                }
                foreach (GgufTensorInfo tensor in file.Tensors)
                {
                    ReadOnlySpan<byte> bytes = file.TensorBytes(tensor);
                    tensorBytes += bytes.Length > 0 ? bytes[0] + bytes[^1] : 0;
                }
            }
            using BertModel model = BertModel.Load(path);
            return FuzzOutcome.Read($"BERT model, {model.Config.LayerCount} layers, {model.Vocabulary.Length} tokens");
        }
        catch (GgufFormatException e)
        {
            return FuzzOutcome.Refused(e);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static FuzzOutcome Onnx(byte[] input)
    {
        try
        {
            OnnxModel model = OnnxModel.Read(input);
            foreach (string name in model.Inputs.Concat(model.Nodes.SelectMany(n => n.Inputs)))
            {
                _ = model.ConstantFor(name);
            }
            return FuzzOutcome.Read($"{model.Nodes.Count} nodes, {model.Initializers.Count} initializers");
        }
        catch (OnnxFormatException e)
        {
            return FuzzOutcome.Refused(e);
        }
    }

    /// <summary>As a retained message on edgeslm/&lt;site&gt;/intents/set: strict UTF-8, then what the engine does with it.</summary>
    private static FuzzOutcome IntentsYaml(byte[] input)
    {
        if (!PayloadReader.TryReadText(new ReadOnlySequence<byte>(input), int.MaxValue, out string yaml, out string reason))
        {
            return FuzzOutcome.Read($"not read: {reason}");
        }
        try
        {
            IntentDefinitions definitions = IntentDefinitions.FromYaml(yaml, "fuzz.yaml");
            return UseLibrary(definitions.Library, [.. definitions.IntentNames]);
        }
        catch (IntentFileException e)
        {
            return FuzzOutcome.Refused(e);
        }
    }

    /// <summary>One template: parsed, then put into an intents file with lists and rules of every kind, expanded and matched.</summary>
    private static FuzzOutcome Template(byte[] input)
    {
        if (!PayloadReader.TryReadText(new ReadOnlySequence<byte>(input), int.MaxValue, out string template, out string reason))
        {
            return FuzzOutcome.Read($"not read: {reason}");
        }
        try
        {
            _ = TemplateParser.Parse(template);
        }
        catch (TemplateFormatException e)
        {
            return FuzzOutcome.Refused(e);
        }
        try
        {
            IntentLibrary library = IntentLibrary.Parse(TemplateHost.Replace("TEMPLATE", YamlQuoted(template)), "template.yaml");
            FuzzOutcome used = UseLibrary(library, ["Fuzz"], template);
            return FuzzOutcome.Read($"parsed; {used.Detail}");
        }
        catch (IntentFileException e)
        {
            return FuzzOutcome.Refused(e);
        }
    }

    /// <summary>What the module does with a library: expansion for training, the exact matcher, the slot extractors.</summary>
    private static FuzzOutcome UseLibrary(IntentLibrary library, string[] intents, string? utterance = null)
    {
        var problems = new List<string>();
        List<IntentExample> examples = TemplateExpander.Expand(library, ExamplesPerTemplate, ExpansionSeed, problems);
        var matcher = new TemplateMatcher(library, problems: []);
        SlotExtractor[] extractors = intents.Select(intent => SlotExtractor.ForIntent(library, intent)).ToArray();
        IEnumerable<string> utterances = examples.Take(MatchedSentences).Select(e => e.Text)
            .Append(utterance ?? "turn on the kitchen light please").Append("set it to 21.5 degrees for 10 minutes at 6:30 pm");
        int matched = 0;
        foreach (string text in utterances)
        {
            matched += matcher.Match(text) is null ? 0 : 1;
            foreach (SlotExtractor extractor in extractors)
            {
                _ = extractor.Extract(text);
            }
        }
        return FuzzOutcome.Read($"{examples.Count} sentences, {problems.Count} problems, {matcher.TemplateCount} templates, {matched} matched");
    }

    private static FuzzOutcome Hermes(byte[] input)
    {
        var hermes = new HermesProtocol(HermesProtocol.DefaultErrorTopic);
        return hermes.Parse(HermesProtocol.QueryTopic, Segmented(input), MaxPayloadBytes) switch
        {
            TranscriptRequest request => Answered(request, r => hermes.Results(request, r).ToList()),
            RequestError error => Refused(error, hermes.Error(error)),
            var other => throw new InvalidOperationException($"HermesProtocol.Parse returned {other?.GetType().Name ?? "null"}"),
        };
    }

    private static FuzzOutcome Native(byte[] input)
    {
        var native = new NativeProtocol("default");
        return native.Parse(native.TranscriptTopic, Segmented(input), MaxPayloadBytes, "reply/here", [1, 2, 3]) switch
        {
            TranscriptRequest request => Answered(request, r => [native.Result(request, r, 1.5)]),
            RequestError error => Refused(error, native.Error(error)),
            var other => throw new InvalidOperationException($"NativeProtocol.Parse returned {other?.GetType().Name ?? "null"}"),
        };
    }

    /// <summary>
    /// The transcript through what the engine runs on it besides the encoder (the exact matcher and the slot
    /// extractors of the built-in intents), then the answers the module would publish: not recognized, and
    /// recognized with a slot over the whole text.
    /// </summary>
    /// <summary>A twin document (GET response) or a desired-properties patch, then the intents YAML it carries.</summary>
    private static FuzzOutcome AzureTwin(byte[] input)
    {
        DesiredState state;
        try
        {
            // Read both ways: as the whole twin (at connection) and as a patch (later); the patch's state is used.
            (DesiredState whole, _) = AzurePayloads.Desired(Segmented(input), whole: true, new DesiredState(null, null), configuredThreshold: 0.5);
            (state, _) = AzurePayloads.Desired(Segmented(input), whole: false, whole, configuredThreshold: 0.5);
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or FormatException)
        {
            return FuzzOutcome.Refused(e);
        }
        if (state.IntentsYaml is string yaml)
        {
            try
            {
                IntentDefinitions.FromYaml(yaml, "twin");
            }
            catch (Exception e) when (e is IntentFileException or TemplateFormatException)
            {
                return FuzzOutcome.Refused(e);
            }
        }
        return FuzzOutcome.Read($"threshold {state.Threshold?.ToString(CultureInfo.InvariantCulture) ?? "unset"}, intents {state.IntentsYaml?.Length ?? 0} chars");
    }

    /// <summary>A <c>classify</c> direct method: the payload as IoT Hub delivers it, answered as the module answers.</summary>
    private static FuzzOutcome AzureMethod(byte[] input)
    {
        var native = new NativeProtocol("default");
        const string topic = "$iothub/methods/POST/classify/?$rid=1";
        return AzurePayloads.MethodRequest(topic, Segmented(input), MaxPayloadBytes, "default", native, "$iothub/methods/res/200/?$rid=1", "$iothub/methods/res/400/?$rid=1") switch
        {
            TranscriptRequest request => Answered(request, r => [native.Result(request, r, 1.5)]),
            RequestError error => Refused(error, native.Error(error)),
            var other => throw new InvalidOperationException($"AzurePayloads.MethodRequest returned {other?.GetType().Name ?? "null"}"),
        };
    }

    private static FuzzOutcome Answered(TranscriptRequest request, Func<IntentResult, List<OutgoingMessage>> answer)
    {
        string text = request.Text;
        (TemplateMatcher matcher, SlotExtractor[] extractors) = SampleEngine.Value;
        _ = matcher.Match(text);
        foreach (SlotExtractor extractor in extractors)
        {
            _ = extractor.Extract(text);
        }
        var slot = new SlotValue("name", text, text, 0, text.Length);
        answer(new IntentResult(text, null, 0.2f, [], ExactMatch: false));
        answer(new IntentResult(text, "HassTurnOn", 0.9f, [slot, new SlotValue("domain", "light", "", 0, 0)], ExactMatch: true));
        return FuzzOutcome.Read($"request {request.Id}: {text.Length} chars");
    }

    private static readonly Lazy<(TemplateMatcher Matcher, SlotExtractor[] Extractors)> SampleEngine = new(() =>
    {
        IntentDefinitions home = SampleIntents.Load();
        return (new TemplateMatcher(home.Library, problems: []),
            home.IntentNames.Select(intent => SlotExtractor.ForIntent(home.Library, intent)).ToArray());
    });

    private static FuzzOutcome Refused(RequestError error, OutgoingMessage reply) =>
        new(false, $"RequestError: {error.Reason} ({reply.Payload.Length} bytes on {reply.Topic})");

    /// <summary>MQTTnet hands over payloads as sequences; a split one takes the multi-segment paths too.</summary>
    private static ReadOnlySequence<byte> Segmented(byte[] input)
    {
        if (input.Length < 2)
        {
            return new ReadOnlySequence<byte>(input);
        }
        var first = new Segment(input.AsMemory(0, input.Length / 2), 0);
        Segment last = first.Append(input.AsMemory(input.Length / 2));
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    /// <summary>A YAML double-quoted scalar holding exactly <paramref name="text"/> (valid UTF-16: it came from strict UTF-8).</summary>
    private static string YamlQuoted(string text)
    {
        var quoted = new StringBuilder("\"");
        foreach (Rune rune in text.EnumerateRunes())
        {
            if (rune.Value is '"' or '\\')
            {
                quoted.Append('\\').Append((char)rune.Value);
            }
            else if (rune.Value is >= 0x20 and < 0x7F)
            {
                quoted.Append((char)rune.Value);
            }
            else
            {
                quoted.Append(rune.IsBmp ? $"\\u{rune.Value:X4}" : $"\\U{rune.Value:X8}");
            }
        }
        return quoted.Append('"').ToString();
    }

    // Lists and rules of every kind the templates can refer to, as Home Assistant's files use them.
    private const string TemplateHost = """
        lists:
          name:
            values: ["kitchen light", "lamp[s]", {in: "(tv|television)", out: "media_player.tv"}]
          area:
            values: ["kitchen", "living room", {in: "{name} room", out: "nested"}]
          brightness:
            range: {from: 0, to: 100, type: percentage}
          temperature:
            range: {from: 5, to: 35, type: temperature}
          item:
            wildcard: true
        expansion_rules:
          lights: "(light|lights|lamp[s])"
          the_area: "[the] {area}"
        skip_words: ["please", "can you"]
        intents:
          Fuzz:
            data:
              - sentences: [TEMPLATE]
                slots: {domain: light}
        """;

    /// <summary>
    /// As the Wyoming server reads one connection (its default limits): events until the end or a refusal, each
    /// answered by the intent handler (a stand-in classifier) and the answer written and read back unchanged.
    /// </summary>
    private static FuzzOutcome WyomingEvents(byte[] input)
    {
        var defaults = new WyomingSettings();
        // Made here, not in a static field: instrumented code may run only under afl-fuzz, and the harness reads
        // Names (this class's statics) before the fuzzer starts.
        var handler = new WyomingIntentHandler(
            (text, _) => Task.FromResult(text.Length % 2 == 0
                ? new IntentResult(text, "HassTurnOn", 1f, [new SlotValue("name", text, text, 0, text.Length)], ExactMatch: true)
                : new IntentResult(text, null, 0.1f, [], ExactMatch: false)),
            () => null, HomeAssistantIntents.BuiltIn, defaults, NullLogger.Instance);
        var reader = new WyomingEventReader(new MemoryStream(input), defaults.Limits);
        int events = 0, answers = 0;
        try
        {
            while (reader.ReadAsync().AsTask().GetAwaiter().GetResult() is WyomingEvent request)
            {
                events++;
                if (handler.AnswerAsync(request, CancellationToken.None).GetAwaiter().GetResult() is not WyomingEvent answer)
                {
                    continue;
                }
                answers++;
                byte[] written = WyomingEventWriter.ToBytes(answer);
                WyomingEvent read = new WyomingEventReader(new MemoryStream(written), new WyomingLimits(1 << 20, 1 << 24, 1 << 24))
                    .ReadAsync().AsTask().GetAwaiter().GetResult() ?? throw new InvalidOperationException("an answer written was not read back");
                if (read.Type != answer.Type || !WyomingEventWriter.ToBytes(read).AsSpan().SequenceEqual(written))
                {
                    throw new InvalidOperationException($"the {answer.Type} answer did not survive a round trip");
                }
            }
            return FuzzOutcome.Read($"{events} events, {answers} answers");
        }
        catch (WyomingProtocolException e)
        {
            return FuzzOutcome.Refused(e);
        }
        catch (EndOfStreamException e)
        {
            return FuzzOutcome.Refused(e);
        }
    }

    /// <summary>The input as text for messages: printable ASCII, the rest as \xNN.</summary>
    public static string Printable(byte[] input, int max = 120)
    {
        var text = new StringBuilder();
        foreach (byte b in input.Take(max))
        {
            text.Append(b is >= 0x20 and < 0x7F ? ((char)b).ToString() : string.Create(CultureInfo.InvariantCulture, $"\\x{b:X2}"));
        }
        return input.Length > max ? text.Append("...").ToString() : text.ToString();
    }
}
