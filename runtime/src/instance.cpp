#include "vkquant/instance.hpp"

#include <algorithm>
#include <utility>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "vkquant/error.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define VKQ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VKQ_ASAN 1
#endif
#endif
#if defined(VKQ_ASAN) && defined(__linux__)
#include <dlfcn.h>
#include <link.h>

#include <set>
#endif

namespace vkq {

// ---------------------------------------------------------------------------
// Validation messages
// ---------------------------------------------------------------------------

struct Instance::Messages {
  mutable std::mutex mutex;
  std::uint32_t errors = 0, warnings = 0;
  std::vector<std::string> texts;
};

namespace {

#if defined(VKQ_ASAN) && defined(__linux__)
// Sanitizer builds only. LeakSanitizer looks for leaks at process exit, when
// the Vulkan loader has already unloaded the driver: the driver's own leaks
// then show up in "<unknown module>" frames that tests/lsan.supp cannot name
// (seen with Mesa 22.3.6-1+deb12u2's lavapipe, 128 bytes from realloc). Keeping
// what Instance::create loaded mapped until exit (layers excepted: their state
// must start afresh with each instance) lets the suppressions see the driver.
std::set<std::string> loaded_libraries() {
  std::set<std::string> names;
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* out) {
        if (info->dlpi_name && *info->dlpi_name) static_cast<std::set<std::string>*>(out)->insert(info->dlpi_name);
        return 0;
      },
      &names);
  return names;
}
void pin_libraries_loaded_since(const std::set<std::string>& before) {
  for (const auto& name : loaded_libraries())
    if (!before.contains(name) && name.find("VkLayer") == std::string::npos)
      (void)dlopen(name.c_str(), RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}
#endif

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  if (!v) return false;
  std::string_view s(v);
  return s == "1" || s == "on" || s == "ON" || s == "true" || s == "yes";
}

VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                          VkDebugUtilsMessageTypeFlagsEXT,
                                          const VkDebugUtilsMessengerCallbackDataEXT* data,
                                          void* user) {
  // The loader reports through the same messenger; only the layers' words count.
  if (data->pMessageIdName && std::string_view(data->pMessageIdName) == "Loader Message") return VK_FALSE;
  auto* m = static_cast<Instance::Messages*>(user);
  std::lock_guard lock(m->mutex);
  if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
    ++m->errors;
    if (m->texts.size() < 32) m->texts.emplace_back(data->pMessage ? data->pMessage : "");
    std::fprintf(stderr, "vkquant: validation error: %s\n", data->pMessage ? data->pMessage : "");
  } else if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
    ++m->warnings;
    if (env_flag("VKQ_VALIDATION_VERBOSE"))
      std::fprintf(stderr, "vkquant: validation warning: %s\n", data->pMessage ? data->pMessage : "");
  }
  return VK_FALSE;
}

bool has_layer(const char* name) {
  std::uint32_t n = 0;
  if (vkEnumerateInstanceLayerProperties(&n, nullptr) != VK_SUCCESS) return false;
  std::vector<VkLayerProperties> layers(n);
  if (vkEnumerateInstanceLayerProperties(&n, layers.data()) != VK_SUCCESS) return false;
  return std::any_of(layers.begin(), layers.end(), [&](auto& l) { return std::strcmp(l.layerName, name) == 0; });
}

std::vector<VkExtensionProperties> instance_extensions() {
  std::uint32_t n = 0;
  if (vkEnumerateInstanceExtensionProperties(nullptr, &n, nullptr) != VK_SUCCESS) return {};
  std::vector<VkExtensionProperties> e(n);
  if (vkEnumerateInstanceExtensionProperties(nullptr, &n, e.data()) != VK_SUCCESS) return {};
  e.resize(n);
  return e;
}

bool has_extension(const std::vector<VkExtensionProperties>& exts, const char* name) {
  return std::any_of(exts.begin(), exts.end(), [&](auto& e) { return std::strcmp(e.extensionName, name) == 0; });
}

const char* vendor_name(std::uint32_t id) {
  switch (id) {
    case 0x10DE: return "NVIDIA";
    case 0x1002: return "AMD";
    case 0x8086: return "Intel";
    case 0x106B: return "Apple";
    case 0x13B5: return "ARM";
    case 0x5143: return "Qualcomm";
    case 0x1010: return "ImgTec";
    case 0x10005: return "Mesa";
    default: return "unknown";
  }
}

// Reads everything vkquant needs to know about one physical device.
DeviceInfo describe(VkPhysicalDevice pd, std::uint32_t index, std::uint32_t instance_api) {
  DeviceInfo d;
  d.index = index;
  d.physical = pd;
  VkPhysicalDeviceProperties base{};
  vkGetPhysicalDeviceProperties(pd, &base);
  d.api_version = base.apiVersion;
  std::uint32_t api = std::min(base.apiVersion, instance_api);

  VkPhysicalDeviceVulkan11Properties p11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_PROPERTIES};
  VkPhysicalDeviceVulkan12Properties p12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_PROPERTIES};
  VkPhysicalDeviceVulkan13Properties p13{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_PROPERTIES};
  VkPhysicalDeviceProperties2 props{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  VkPhysicalDeviceVulkan11Features f11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
  VkPhysicalDeviceVulkan12Features f12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  VkPhysicalDeviceVulkan13Features f13{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
  VkPhysicalDeviceFeatures2 feats{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  if (api >= VK_API_VERSION_1_2) {
    props.pNext = &p11;
    p11.pNext = &p12;
    feats.pNext = &f11;
    f11.pNext = &f12;
    if (api >= VK_API_VERSION_1_3) {
      p12.pNext = &p13;
      f12.pNext = &f13;
    }
  }
  vkGetPhysicalDeviceProperties2(pd, &props);
  vkGetPhysicalDeviceFeatures2(pd, &feats);

  d.name = base.deviceName;
  d.vendor_id = base.vendorID;
  d.device_id = base.deviceID;
  d.vendor = vendor_name(base.vendorID);
  d.type = base.deviceType;
  d.driver_version = base.driverVersion;
  const auto& L = base.limits;
  d.max_storage_buffer_range = L.maxStorageBufferRange;
  d.min_storage_buffer_offset_alignment = L.minStorageBufferOffsetAlignment;
  d.max_shared_memory = L.maxComputeSharedMemorySize;
  for (int i = 0; i < 3; ++i) {
    d.max_workgroup_count[i] = L.maxComputeWorkGroupCount[i];
    d.max_workgroup_size[i] = L.maxComputeWorkGroupSize[i];
  }
  d.max_workgroup_invocations = L.maxComputeWorkGroupInvocations;
  d.max_push_constants = L.maxPushConstantsSize;
  d.timestamp_period_ns = L.timestampPeriod;
  d.int64 = feats.features.shaderInt64;
  d.int16 = feats.features.shaderInt16;
  if (api >= VK_API_VERSION_1_2) {
    d.subgroup_size = d.min_subgroup_size = d.max_subgroup_size = p11.subgroupSize;
    d.subgroup_ops = p11.subgroupSupportedOperations;
    d.subgroup_stages = p11.subgroupSupportedStages;
    d.max_memory_allocation_size = p11.maxMemoryAllocationSize;
    d.driver_name = p12.driverName;
    d.driver_info = p12.driverInfo;
    d.fp16 = f12.shaderFloat16;
    d.int8 = f12.shaderInt8;
    d.storage16 = f11.storageBuffer16BitAccess;
    d.storage8 = f12.storageBuffer8BitAccess;
  }
  if (api >= VK_API_VERSION_1_3) {
    d.min_subgroup_size = p13.minSubgroupSize;
    d.max_subgroup_size = p13.maxSubgroupSize;
    d.subgroup_size_control = f13.subgroupSizeControl && f13.computeFullSubgroups;
    d.integer_dot_product = f13.shaderIntegerDotProduct;
    d.max_buffer_size = p13.maxBufferSize;
  }

  std::uint32_t n = 0;
  vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, nullptr);
  std::vector<VkExtensionProperties> exts(n);
  vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, exts.data());
  exts.resize(n);
  d.cooperative_matrix = has_extension(exts, "VK_KHR_cooperative_matrix");

  std::uint32_t nq = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, nullptr);
  std::vector<VkQueueFamilyProperties> q(nq);
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, q.data());
  // Prefer a compute family that can write timestamps.
  for (std::uint32_t i = 0; i < nq; ++i) {
    if (!(q[i].queueFlags & VK_QUEUE_COMPUTE_BIT)) continue;
    if (d.compute_queue_family < 0 || (d.timestamp_valid_bits == 0 && q[i].timestampValidBits > 0)) {
      d.compute_queue_family = std::int32_t(i);
      d.timestamp_valid_bits = q[i].timestampValidBits;
    }
  }
  d.has_compute_queue = d.compute_queue_family >= 0;

  VkPhysicalDeviceMemoryProperties mem{};
  vkGetPhysicalDeviceMemoryProperties(pd, &mem);
  for (std::uint32_t i = 0; i < mem.memoryHeapCount; ++i)
    if (mem.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) d.device_local_bytes += mem.memoryHeaps[i].size;
  return d;
}

int type_rank(VkPhysicalDeviceType t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// DeviceInfo
// ---------------------------------------------------------------------------

std::string DeviceInfo::type_name() const {
  switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
    default: return "other";
  }
}

std::string DeviceInfo::api_version_string() const {
  return std::to_string(VK_API_VERSION_MAJOR(api_version)) + "." + std::to_string(VK_API_VERSION_MINOR(api_version)) +
         "." + std::to_string(VK_API_VERSION_PATCH(api_version));
}

std::string DeviceInfo::driver_version_string() const {
  const std::uint32_t v = driver_version;
  if (vendor_id == 0x10DE)  // NVIDIA packs 10.8.8.6 bits
    return std::to_string(v >> 22) + "." + std::to_string((v >> 14) & 0xff) + "." + std::to_string((v >> 6) & 0xff) +
           "." + std::to_string(v & 0x3f);
  return std::to_string(VK_API_VERSION_MAJOR(v)) + "." + std::to_string(VK_API_VERSION_MINOR(v)) + "." +
         std::to_string(VK_API_VERSION_PATCH(v));
}

std::vector<std::string> DeviceInfo::subgroup_op_names() const {
  static constexpr std::pair<VkSubgroupFeatureFlagBits, const char*> kOps[] = {
      {VK_SUBGROUP_FEATURE_BASIC_BIT, "basic"},         {VK_SUBGROUP_FEATURE_VOTE_BIT, "vote"},
      {VK_SUBGROUP_FEATURE_ARITHMETIC_BIT, "arithmetic"}, {VK_SUBGROUP_FEATURE_BALLOT_BIT, "ballot"},
      {VK_SUBGROUP_FEATURE_SHUFFLE_BIT, "shuffle"},     {VK_SUBGROUP_FEATURE_SHUFFLE_RELATIVE_BIT, "shuffle_relative"},
      {VK_SUBGROUP_FEATURE_CLUSTERED_BIT, "clustered"}, {VK_SUBGROUP_FEATURE_QUAD_BIT, "quad"},
  };
  std::vector<std::string> out;
  for (auto [bit, name] : kOps)
    if (subgroup_ops & bit) out.emplace_back(name);
  return out;
}

// ---------------------------------------------------------------------------
// Instance
// ---------------------------------------------------------------------------

InstanceOptions InstanceOptions::from_env() {
  InstanceOptions o;
  o.validation = env_flag("VKQ_VALIDATION");
  o.sync_validation = env_flag("VKQ_SYNC_VALIDATION");
  return o;
}

Instance Instance::create(const InstanceOptions& options) {
#if defined(VKQ_ASAN) && defined(__linux__)
  const std::set<std::string> libraries_before = loaded_libraries();  // the loader loads drivers from here on
#endif
  static const VkResult loaded = volkInitialize();
  if (loaded != VK_SUCCESS) throw NoDeviceError("no Vulkan loader found (libvulkan.so.1); install a Vulkan driver");

  Instance inst;
  inst.messages_ = std::make_unique<Messages>();
  std::uint32_t loader_api = VK_API_VERSION_1_0;
  if (vkEnumerateInstanceVersion) vkEnumerateInstanceVersion(&loader_api);
  if (loader_api < VK_API_VERSION_1_2)
    throw NoDeviceError("the Vulkan loader supports only API " + std::to_string(VK_API_VERSION_MAJOR(loader_api)) +
                        "." + std::to_string(VK_API_VERSION_MINOR(loader_api)) + "; vkquant needs 1.2");
  inst.api_version_ = std::min<std::uint32_t>(loader_api, VK_API_VERSION_1_3);

  const auto exts = instance_extensions();
  std::vector<const char*> layers, extensions;
  bool validation = options.validation || options.require_validation;
  if (validation && !has_layer("VK_LAYER_KHRONOS_validation")) {
    if (options.require_validation)
      throw Error("validation was required but VK_LAYER_KHRONOS_validation is not installed");
    std::fprintf(stderr, "vkquant: VK_LAYER_KHRONOS_validation not installed; running without validation\n");
    validation = false;
  }
  if (validation) {
    layers.push_back("VK_LAYER_KHRONOS_validation");
    extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
  }
  VkInstanceCreateFlags flags = 0;
  if (has_extension(exts, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
    extensions.push_back(VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME);
    flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
  }

  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = options.app_name.c_str();
  app.pEngineName = "vkquant";
  app.apiVersion = inst.api_version_;
  VkDebugUtilsMessengerCreateInfoEXT msg{VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
  msg.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT;
  msg.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                    VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
  msg.pfnUserCallback = on_message;
  msg.pUserData = inst.messages_.get();
  VkValidationFeatureEnableEXT sync_feature = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT;
  VkValidationFeaturesEXT features{VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT};
  features.enabledValidationFeatureCount = 1;
  features.pEnabledValidationFeatures = &sync_feature;

  VkInstanceCreateInfo ci{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  ci.flags = flags;
  ci.pApplicationInfo = &app;
  ci.enabledLayerCount = std::uint32_t(layers.size());
  ci.ppEnabledLayerNames = layers.data();
  ci.enabledExtensionCount = std::uint32_t(extensions.size());
  ci.ppEnabledExtensionNames = extensions.data();
  if (validation) {
    ci.pNext = &msg;  // also catches messages from vkCreateInstance itself
    if (options.sync_validation) msg.pNext = &features;
  }
  VkResult r = vkCreateInstance(&ci, nullptr, &inst.instance_);
#if defined(VKQ_ASAN) && defined(__linux__)
  pin_libraries_loaded_since(libraries_before);
#endif
  if (r == VK_ERROR_INCOMPATIBLE_DRIVER || r == VK_ERROR_INITIALIZATION_FAILED)
    throw NoDeviceError(std::string("no Vulkan driver found (vkCreateInstance: ") + result_name(r) +
                        "); install one, e.g. mesa-vulkan-drivers, or check VK_DRIVER_FILES");
  if (r == VK_ERROR_OUT_OF_HOST_MEMORY) {
    // The loader (1.3.239 at least) also answers this when a driver manifest
    // is not JSON or is a directory; a real lack of memory this early is
    // unlikely, and either way there is no usable driver.
    std::string manifests;
    for (const char* var : {"VK_DRIVER_FILES", "VK_ICD_FILENAMES"})
      if (const char* v = std::getenv(var); v && manifests.empty()) manifests = std::string(var) + "=" + v;
    throw NoDeviceError(std::string("no usable Vulkan driver (vkCreateInstance: ") + result_name(r) +
                        ", also the loader's answer to a driver manifest it cannot read); check " +
                        (manifests.empty() ? std::string("the installed drivers") : manifests));
  }
  check(r, "vkCreateInstance");
  volkLoadInstanceOnly(inst.instance_);
  if (validation) {
    msg.pNext = nullptr;
    r = vkCreateDebugUtilsMessengerEXT(inst.instance_, &msg, nullptr, &inst.messenger_);
    if (r != VK_SUCCESS) {
      inst.destroy();
      check(r, "vkCreateDebugUtilsMessengerEXT");
    }
  }

  std::uint32_t n = 0;
  r = vkEnumeratePhysicalDevices(inst.instance_, &n, nullptr);
  if (r != VK_SUCCESS && r != VK_ERROR_INITIALIZATION_FAILED) check(r, "vkEnumeratePhysicalDevices");
  std::vector<VkPhysicalDevice> pds(n);
  if (n) check(vkEnumeratePhysicalDevices(inst.instance_, &n, pds.data()), "vkEnumeratePhysicalDevices");
  pds.resize(n);
  if (pds.empty()) throw NoDeviceError("no Vulkan device found; install a driver (e.g. mesa-vulkan-drivers) or check VK_DRIVER_FILES");
  for (std::uint32_t i = 0; i < n; ++i) inst.devices_.push_back(describe(pds[i], i, inst.api_version_));
  return inst;
}

std::uint32_t Instance::default_device() const {
  int best = -1, best_rank = -1;
  for (const auto& d : devices_) {
    if (!d.usable()) continue;
    if (int rank = type_rank(d.type); rank > best_rank) {
      best = int(d.index);
      best_rank = rank;
    }
  }
  if (best < 0) throw NoDeviceError("no Vulkan 1.2 device with a compute queue found");
  return std::uint32_t(best);
}

Instance::Instance(Instance&& o) noexcept { *this = std::move(o); }

Instance& Instance::operator=(Instance&& o) noexcept {
  if (this != &o) {
    destroy();
    instance_ = std::exchange(o.instance_, VK_NULL_HANDLE);
    messenger_ = std::exchange(o.messenger_, VK_NULL_HANDLE);
    messages_ = std::move(o.messages_);
    api_version_ = o.api_version_;
    devices_ = std::move(o.devices_);
    keep_ = std::exchange(o.keep_, false);
  }
  return *this;
}

Instance::~Instance() { destroy(); }

void Instance::destroy() noexcept {
  if (keep_ && instance_) {
    // A device of ours may still be executing: destroying the instance under
    // it is undefined. Keep the instance and the messenger's counters (still
    // reachable, so leak checkers stay quiet) until the process ends.
    static auto* kept = new std::vector<std::unique_ptr<Messages>>;
    kept->push_back(std::move(messages_));
    instance_ = VK_NULL_HANDLE;
    messenger_ = VK_NULL_HANDLE;
    return;
  }
  if (messenger_) vkDestroyDebugUtilsMessengerEXT(instance_, messenger_, nullptr);
  if (instance_) vkDestroyInstance(instance_, nullptr);
  messenger_ = VK_NULL_HANDLE;
  instance_ = VK_NULL_HANDLE;
}

std::uint32_t Instance::validation_errors() const {
  if (!messages_) return 0;
  std::lock_guard lock(messages_->mutex);
  return messages_->errors;
}

std::uint32_t Instance::validation_warnings() const {
  if (!messages_) return 0;
  std::lock_guard lock(messages_->mutex);
  return messages_->warnings;
}

std::vector<std::string> Instance::validation_messages() const {
  if (!messages_) return {};
  std::lock_guard lock(messages_->mutex);
  return messages_->texts;
}

void Instance::reset_validation_counts() {
  if (!messages_) return;
  std::lock_guard lock(messages_->mutex);
  messages_->errors = messages_->warnings = 0;
  messages_->texts.clear();
}

}  // namespace vkq
